"""The customer-service message API (``message/custom/send``), through wechatpy's client.

The access token lives in the state store, not in each worker: WeChat allows a limited number of
token fetches a day, and every fetch invalidates the previous token a few minutes later, so all
workers share one. It is stored to expire ``token_refresh_margin_seconds`` before WeChat's
expiry, which makes the first worker to need it after that refresh it early.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from wechatpy import WeChatClient
from wechatpy.session import SessionStorage

from bots.channels.wechat.format import menu_message, render, split
from bots.channels.wechat.settings import WeChatSettings
from bots.replies import Reply
from bots.store import SharedValues

log = logging.getLogger("kb.wechat")


class StoreSession(SessionStorage):
    """wechatpy's session storage over the shared values every worker sees (:class:`~bots.store.SharedValues`)."""

    def __init__(self, values: SharedValues, refresh_margin: float = 300.0, clock: Callable[[], float] = time.time) -> None:
        self.values = values
        self.refresh_margin = refresh_margin
        self.clock = clock

    def get(self, key: str, default: Any = None) -> Any:
        value = self.values.get_value(f"wechat:{key}", self.clock())
        return default if value is None else value

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        if value is None:
            return
        expires_at = None
        if ttl:
            # Refresh early, but never make a short-lived token look expired at once.
            expires_at = self.clock() + max(float(ttl) - self.refresh_margin, float(ttl) / 2)
        self.values.set_value(f"wechat:{key}", str(value), expires_at)

    def delete(self, key: str) -> None:
        self.values.set_value(f"wechat:{key}", "", 0.0)


class _TimeoutSession(requests.Session):
    """wechatpy fetches the token without a timeout; a hung API must not hang a worker."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().request(*args, **kwargs)


class CustomerServiceClient(WeChatClient):
    """wechatpy's client with the API base URL from the settings (a test server, a proxy) for
    every call including the token, and one token fetch at a time per process."""

    def __init__(self, settings: WeChatSettings, session: SessionStorage) -> None:
        super().__init__(settings.app_id, settings.app_secret, session=session, timeout=settings.api_timeout_seconds)
        self.API_BASE_URL = settings.api_base_url
        self._http = _TimeoutSession(settings.api_timeout_seconds)
        self._token_lock = threading.Lock()

    def fetch_access_token(self) -> dict[str, Any]:
        return self._fetch_access_token(
            url=f"{self.API_BASE_URL}token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )

    @property
    def access_token(self) -> str:
        token = self.session.get(self.access_token_key)
        if token:
            return token
        with self._token_lock:
            token = self.session.get(self.access_token_key)
            if not token:
                self.fetch_access_token()
                token = self.session.get(self.access_token_key)
        return token

    def send_texts(self, user_id: str, texts: list[str]) -> int:
        """Send texts in order, each cut to WeChat's 2,048 bytes; how many messages went out.
        Raises wechatpy's or requests' exception on the first failure."""
        sent = 0
        for text in texts:
            for piece in split(text):
                self.message.send_text(user_id, piece)
                sent += 1
        return sent

    def send_replies(self, user_id: str, replies: list[Reply], after: list[str] | None = None) -> int:
        """Send the engine's replies in order, then the texts ``after``: a reply with numbered
        choices as a clickable menu (``msgmenu``), the others as text. How many messages went out."""
        sent = 0
        for reply in replies:
            menu = menu_message(reply)
            if menu is None:
                sent += self.send_texts(user_id, [render(reply)])
                continue
            self.message.send_msg_menu(user_id, menu)
            sent += 1
        return sent + self.send_texts(user_id, after or [])


def make_client(settings: WeChatSettings, values: SharedValues) -> CustomerServiceClient | None:
    """The client, or None when the AppID and secret are not configured."""
    if not settings.can_push:
        return None
    return CustomerServiceClient(settings, StoreSession(values, settings.token_refresh_margin_seconds))
