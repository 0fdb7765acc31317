"""The web desk at ``/desk``: agents work the ticket queue and search the knowledge base; editors
read the service figures; admins keep the accounts. Server-rendered HTML (Jinja2), a little
vanilla JavaScript and CSS served from this package: nothing is loaded from elsewhere.

- :mod:`~bots.console.accounts`: argon2 passwords, lock-out;
- :mod:`~bots.console.sessions`: the session cookie and CSRF tokens;
- :mod:`~bots.console.routes`: the pages (:func:`mount_console`);
- :mod:`~bots.console.knowledge`, :mod:`~bots.console.figures`, :mod:`~bots.console.svg`: what
  the search and report pages show.
"""

from __future__ import annotations

from bots.console.accounts import AccountError, add_user, sign_in, unlock
from bots.console.routes import mount_console

__all__ = ["AccountError", "add_user", "mount_console", "sign_in", "unlock"]
