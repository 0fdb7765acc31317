"""``kb``: the command line for editors, agents and developers (:mod:`bots.cli.main`), and
``kb chat`` (:mod:`bots.cli.chat`)."""

from bots.cli.main import main

__all__ = ["main"]
