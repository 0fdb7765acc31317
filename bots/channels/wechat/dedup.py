"""Each message processed once, however often WeChat delivers it.

WeChat retries a message it got no reply to within 5 seconds, up to three times, possibly to
another worker. The first delivery claims the message in the state store (shared by workers and
kept across restarts) and records the reply it gave; a retry gets that same reply, waiting for
it while the first delivery is still being answered, or ``success`` when the budget runs out.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import anyio
import anyio.to_thread

from bots.store import Claims

POLL_SECONDS = 0.05


def message_key(data: dict[str, Any]) -> str:
    """A message's identity: its MsgId; for events (no MsgId), the sender, CreateTime and event."""
    account = data.get("ToUserName", "")
    msg_id = str(data.get("MsgId") or "")
    if msg_id and msg_id != "0":
        return f"wechat:{account}:msg:{msg_id}"
    event = data.get("Event") if isinstance(data.get("Event"), str) else ""
    return f"wechat:{account}:from:{data.get('FromUserName', '')}:{data.get('CreateTime', '')}:{event}"


# Each call takes a worker thread under ``limiter``: the webhook passes its own, so that a
# burst of other work in the shared pool cannot make WeChat miss its deadline.


async def claim(claims: Claims, key: str, limiter: anyio.CapacityLimiter | None = None) -> bool:
    """True for the first delivery of the message, in any worker."""
    return await anyio.to_thread.run_sync(claims.claim, key, time.time(), limiter=limiter)


async def wait_for_reply(claims: Claims, key: str, deadline: float, limiter: anyio.CapacityLimiter | None = None) -> str | None:
    """The reply the first delivery gave, polled until ``deadline`` (``time.monotonic()``)."""
    while True:
        reply = await anyio.to_thread.run_sync(claims.claimed_reply, key, limiter=limiter)
        if reply is not None or time.monotonic() >= deadline:
            return reply
        await asyncio.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))


async def record_reply(claims: Claims, key: str, reply: str, limiter: anyio.CapacityLimiter | None = None) -> None:
    await anyio.to_thread.run_sync(claims.set_claimed_reply, key, reply, limiter=limiter)
