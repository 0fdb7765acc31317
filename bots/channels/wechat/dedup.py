"""Each message processed once, however often WeChat delivers it.

WeChat retries a message it got no reply to within 5 seconds, up to three times, possibly to
another worker. The first delivery claims the message in the state store (with its nonce:
:mod:`bots.channels.wechat.replay`) (shared by workers and
kept across restarts) and records the reply it gave; a retry gets that same reply, waiting for
it while the first delivery is still being answered, or ``success`` when the budget runs out.

A worker that dies (killed, its machine gone) while it holds a claim would lose that message: its
retry would wait for a reply that never comes. So each worker says it is alive in the shared
values every second, and a claim names its holder; a retry whose claim is unanswered and whose
holder has not said so for :data:`ALIVE_SECONDS` takes the message over (one worker wins) and
answers it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import anyio
import anyio.to_thread

from bots.store import Claims, SharedValues

POLL_SECONDS = 0.05
HEARTBEAT_SECONDS = 1.0
ALIVE_SECONDS = 3.0
"""A worker silent this long is dead; well within the 5 s after which WeChat retries."""


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


def alive_key(holder: str) -> str:
    return f"worker:alive:{holder}"


async def take_over_if_dead(
    claims: Claims,
    values: SharedValues,
    key: str,
    holder: str,
    deadline: float,
    limiter: anyio.CapacityLimiter | None = None,
) -> bool:
    """For a retry of a claimed message: True once ``holder`` has taken the claim over from a
    worker that died without answering; False when the message is answered, or at ``deadline``."""
    while True:
        held = await anyio.to_thread.run_sync(claims.claim_holder, key, limiter=limiter)
        if held is None:
            return False
        was, since = held
        now = time.time()
        # A claim without a holder (made before migration 5) is never taken over.
        if was and since < now - ALIVE_SECONDS:
            alive = await anyio.to_thread.run_sync(values.get_value, alive_key(was), now, limiter=limiter)
            if alive is None and await anyio.to_thread.run_sync(claims.take_over, key, was, holder, now, limiter=limiter):
                return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(min(POLL_SECONDS * 4, max(0.0, deadline - time.monotonic())))


async def heartbeat(values: SharedValues, holder: str) -> None:
    """Say every second that ``holder`` is alive (so that its claims are not taken over)."""
    await anyio.to_thread.run_sync(values.set_value, alive_key(holder), "1", time.time() + ALIVE_SECONDS)


async def wait_for_reply(claims: Claims, key: str, deadline: float, limiter: anyio.CapacityLimiter | None = None) -> str | None:
    """The reply the first delivery gave, polled until ``deadline`` (``time.monotonic()``)."""
    while True:
        reply = await anyio.to_thread.run_sync(claims.claimed_reply, key, limiter=limiter)
        if reply is not None or time.monotonic() >= deadline:
            return reply
        await asyncio.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))


async def record_reply(claims: Claims, key: str, reply: str, limiter: anyio.CapacityLimiter | None = None) -> None:
    await anyio.to_thread.run_sync(claims.set_claimed_reply, key, reply, limiter=limiter)
