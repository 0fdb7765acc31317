"""The Telegram adapter: customers talk to the engine in private chats, agents answer them from
a group chat.

- :mod:`~bots.channels.telegram.settings`: the ``[telegram]`` section (token and secret from the environment);
- :mod:`~bots.channels.telegram.format`: replies as Telegram HTML, split at the 4096-character limit;
- :mod:`~bots.channels.telegram.keyboards`: inline buttons and their callback data;
- :mod:`~bots.channels.telegram.flow`: updates processed concurrently (one chat in order), 429s honoured;
- :mod:`~bots.channels.telegram.agents`: the agents' group as a desk (ticket posts, replies, /take, /close);
- :mod:`~bots.channels.telegram.handlers`: what each update does;
- :mod:`~bots.channels.telegram.bot`: the python-telegram-bot application that ties them together;
- :mod:`~bots.channels.telegram.webhook`: ``POST /telegram/webhook`` in ``kb serve``;
- :mod:`~bots.channels.telegram.polling`: ``kb telegram --polling`` and ``kb telegram set-webhook URL``.

Nothing here imports python-telegram-bot until it is used: :func:`mount_telegram` returns at once
when no token is configured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from bots.channels.hub import ChannelHub
    from kb.config import Config


def mount_telegram(app: FastAPI, config: Config, hub: ChannelHub) -> Any:
    """Add ``POST /telegram/webhook`` to ``kb serve`` when a bot token is configured; see
    :func:`bots.channels.telegram.webhook.mount_telegram`."""
    from bots.channels.telegram.webhook import mount_telegram as mount

    return mount(app, config, hub)


__all__ = ["mount_telegram"]
