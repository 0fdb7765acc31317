"""The ``[telegram]`` section of the configuration.

The bot token and the webhook secret are secrets: ``TELEGRAM_BOT_TOKEN`` and
``TELEGRAM_WEBHOOK_SECRET`` in the environment win over the file (which should then be a local,
ignored one). Without a token the adapter is off and ``kb serve`` mounts no route.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from bots.settings import read_section
from kb.config import Config, ConfigError

CHANNEL = "telegram"
"""The channel name in the engine, the state store and the agent API."""
WEBHOOK_PATH = "/telegram/webhook"
ALLOWED_UPDATES = ["message", "callback_query"]
"""What the bot asks Telegram for; anything else that arrives is acknowledged and ignored."""

_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


@dataclass
class TelegramSettings:
    token: str = ""
    """From @BotFather. Secret: better in ``TELEGRAM_BOT_TOKEN``. Empty: the adapter is off."""
    webhook_secret: str = ""
    """Telegram sends it back in ``X-Telegram-Bot-Api-Secret-Token``; 1–256 of ``A-Z a-z 0-9 _ -``.
    Secret: better in ``TELEGRAM_WEBHOOK_SECRET``. Empty: the webhook refuses every request."""
    agents_chat_id: int = 0
    """The agents' group chat (e.g. -1001234567890); 0: handoffs are not posted (agent API only)."""
    agents_language: str = "zh"
    """The language of what the bot writes in the agents' group (``zh`` or ``en``)."""
    base_url: str = "https://api.telegram.org/bot"
    """The Bot API, the token is appended (a local Bot API server, or a fake in the tests)."""
    max_concurrent_updates: int = 64
    """Updates processed at the same time (different chats; one chat's updates stay in order)."""
    flood_retries: int = 3
    """How often a request refused with 429 is retried, after the ``retry_after`` Telegram asks for."""
    flood_max_wait: float = 60.0
    """A 429 asking to wait longer than this is not waited for (the request fails and is logged)."""

    @property
    def enabled(self) -> bool:
        return bool(self.token)


def load_telegram_settings(config: Config) -> TelegramSettings:
    """The section, with the secrets from the environment; mistakes name the file."""
    settings: TelegramSettings = read_section(config, "telegram", TelegramSettings)
    settings.token = os.environ.get("TELEGRAM_BOT_TOKEN") or settings.token
    settings.webhook_secret = os.environ.get("TELEGRAM_WEBHOOK_SECRET") or settings.webhook_secret
    where = f"{config.source or 'configuration'}: [telegram]"
    if settings.webhook_secret and not _SECRET.fullmatch(settings.webhook_secret):
        raise ConfigError(f"{where} webhook_secret must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
    try:
        settings.agents_chat_id = int(settings.agents_chat_id or 0)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} agents_chat_id must be a chat id (a number such as -1001234567890)") from None
    if settings.agents_language not in ("zh", "en"):
        raise ConfigError(f"{where} agents_language must be 'zh' or 'en'")
    if settings.max_concurrent_updates < 1 or settings.flood_retries < 0:
        raise ConfigError(f"{where} max_concurrent_updates must be at least 1 and flood_retries at least 0")
    return settings
