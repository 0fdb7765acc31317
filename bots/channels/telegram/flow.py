"""How updates and requests flow: many customers at once, each customer's messages in order, and
Telegram's flood control honoured.

- :class:`PerChatUpdateProcessor` processes updates of different chats concurrently (a slow order
  lookup holds up nobody else) but one chat's updates one after the other, so that a customer's
  "1" is read after the question it answers, and an agent's replies reach the customer in order.
- :class:`FloodControl` reacts to a 429: Telegram says how long to wait (``retry_after``); requests
  to that chat wait that long and the refused one is sent again. (PTB's own ``AIORateLimiter``
  needs ``aiolimiter``, which is not a dependency of this project.)
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any

from telegram import Update
from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter, BaseUpdateProcessor
from telegram.warnings import PTBDeprecationWarning

log = logging.getLogger("kb.telegram")


class PerChatUpdateProcessor(BaseUpdateProcessor):
    """Up to ``max_concurrent_updates`` at once; the updates of one private chat (in a group: of
    one member, so that one agent waiting on a slow delivery holds up no other agent) in arrival
    order."""

    def __init__(self, max_concurrent_updates: int) -> None:
        super().__init__(max_concurrent_updates)
        self._queues: dict[tuple[int, int], tuple[asyncio.Lock, int]] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        key = _sequence_key(update)
        if key is None:
            await coroutine
            return
        lock, waiting = self._queues.get(key, (asyncio.Lock(), 0))
        self._queues[key] = (lock, waiting + 1)
        try:
            async with lock:
                await coroutine
        finally:
            lock, waiting = self._queues[key]
            if waiting <= 1:
                del self._queues[key]
            else:
                self._queues[key] = (lock, waiting - 1)

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""


def _sequence_key(update: object) -> tuple[int, int] | None:
    """Updates with the same key are processed one after the other."""
    if not isinstance(update, Update) or update.effective_chat is None:
        return None
    chat = update.effective_chat
    user = update.effective_user
    return (chat.id, 0 if chat.type == "private" or user is None else user.id)


def retry_after_seconds(error: RetryAfter) -> float:
    """``retry_after`` in seconds, whichever type this PTB version gives (int or timedelta)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class FloodControl(BaseRateLimiter[None]):
    """Retry a request refused with 429 after the wait Telegram asks for, and hold the chat's other
    requests back meanwhile. Gives up (the error reaches the caller) after ``max_retries`` or when
    asked to wait longer than ``max_wait`` seconds."""

    def __init__(self, max_retries: int = 3, max_wait: float = 60.0) -> None:
        self.max_retries = max_retries
        self.max_wait = max_wait
        self._paused_until: dict[object, float] = {}

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        self._paused_until.clear()

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        chat = data.get("chat_id")
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            wait = self._paused_until.get(chat, 0.0) - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                result = await callback(*args, **kwargs)
            except RetryAfter as error:
                delay = retry_after_seconds(error)
                attempt += 1
                if attempt > self.max_retries or delay > self.max_wait:
                    log.error("Telegram flood control on %s (chat %s): gave up after %d tries", endpoint, chat, attempt)
                    raise
                log.warning("Telegram flood control on %s (chat %s): retrying in %.1f s", endpoint, chat, delay)
                until = loop.time() + delay + 0.1
                self._paused_until[chat] = max(self._paused_until.get(chat, 0.0), until)
            else:
                if self._paused_until.get(chat, 0.0) <= loop.time():
                    self._paused_until.pop(chat, None)
                return result
