"""Settings of the WeChat Official Account adapter: the ``[wechat]`` section of the
configuration, with the secrets from the environment.

``WECHAT_TOKEN``, ``WECHAT_APP_ID``, ``WECHAT_APP_SECRET`` and ``WECHAT_ENCODING_AES_KEY`` win
over the file, so that the repository's ``kb.toml`` never needs to hold them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from bots.settings import read_section
from kb.config import Config, ConfigError

CHANNEL = "wechat"
"""The engine's name for this channel (conversations, tickets, the question log)."""

ENVIRONMENT = {
    "token": "WECHAT_TOKEN",
    "app_id": "WECHAT_APP_ID",
    "app_secret": "WECHAT_APP_SECRET",
    "encoding_aes_key": "WECHAT_ENCODING_AES_KEY",
}


@dataclass
class WeChatSettings:
    token: str = ""
    """The server-configuration token: signs every request. Secret. Empty: the adapter is off."""
    app_id: str = ""
    app_secret: str = ""
    """AppID and AppSecret: fetch the access token of the customer-service message API. Secret.
    Without them the adapter still answers passively, but cannot answer late or relay agents."""
    encoding_aes_key: str = ""
    """The 43-character EncodingAESKey of compatible and safe mode. Secret."""
    require_encryption: bool = False
    """Refuse plaintext-mode requests (their signature does not cover the message body)."""
    path: str = "/wechat"
    api_base_url: str = "https://api.weixin.qq.com/cgi-bin/"
    api_timeout_seconds: float = 5.0
    reply_budget_seconds: float = 4.5
    """WeChat waits 5 seconds for a passive reply; an answer not ready by then goes out through
    the customer-service message API instead."""
    max_body_bytes: int = 64_000
    timestamp_window_seconds: float = 300.0
    """A request whose signed timestamp is further than this from our clock, either way, is
    refused (403), and a nonce is taken once within it. Five minutes holds WeChat's retries
    (within 15 seconds) and a clock some minutes off."""
    max_concurrent_answers: int = 16
    """Messages the engine answers at once (worker threads). More wait their turn; those whose
    turn comes after the budget are answered later through the customer-service API."""
    session_timeout_minutes: float = 30.0
    """WeChat releases a customer-service session after 30 minutes without messages; an open
    WeChat ticket untouched this long is closed to match. 0: never."""
    session_check_seconds: float = 60.0
    keep_dedup_hours: float = 24.0
    """How long the record of a processed message is kept (WeChat retries within ~15 seconds)."""
    token_refresh_margin_seconds: float = 300.0
    """The access token is refreshed this long before it expires."""

    @property
    def enabled(self) -> bool:
        return bool(self.token)

    @property
    def can_push(self) -> bool:
        """Whether messages can be sent outside a passive reply (the customer-service API)."""
        return bool(self.app_id and self.app_secret)


def load_wechat_settings(config: Config) -> WeChatSettings:
    """The ``[wechat]`` section, secrets from the environment winning; checked now so that a bad
    key fails at start-up with the file's name, not on the first encrypted message."""
    settings: WeChatSettings = read_section(config, "wechat", WeChatSettings)
    for name, variable in ENVIRONMENT.items():
        if os.environ.get(variable):
            setattr(settings, name, os.environ[variable])
    where = f"{config.source or 'configuration'}: [wechat]"
    if settings.encoding_aes_key and len(settings.encoding_aes_key) != 43:
        raise ConfigError(f"{where} encoding_aes_key must be the 43 characters WeChat shows")
    if settings.require_encryption and not settings.encoding_aes_key:
        raise ConfigError(f"{where} require_encryption needs encoding_aes_key (and app_id)")
    if settings.encoding_aes_key and not settings.app_id:
        raise ConfigError(f"{where} encrypted messages need app_id (WECHAT_APP_ID)")
    if not settings.api_base_url.endswith("/"):
        settings.api_base_url += "/"
    if not settings.path.startswith("/"):
        raise ConfigError(f"{where} path must start with '/'")
    limits = (
        settings.reply_budget_seconds,
        settings.max_body_bytes,
        settings.max_concurrent_answers,
        settings.timestamp_window_seconds,
    )
    if min(limits) <= 0:
        raise ConfigError(
            f"{where} reply_budget_seconds, max_body_bytes, max_concurrent_answers and timestamp_window_seconds must be positive"
        )
    return settings
