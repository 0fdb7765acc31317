"""A signed request is used once: its (timestamp, nonce) is claimed in the state store, so
that a signature read from a log or the network cannot carry another body, in any worker.

WeChat's own retry of a message may come with the same timestamp and nonce; it carries the same
message, so it is let through (and :mod:`bots.channels.wechat.dedup` answers it once).
Timestamps outside the window are refused before this (:func:`~bots.channels.wechat.envelope.check_fresh`),
so remembering the nonces as long as the claims are kept covers the window.
"""

from __future__ import annotations

import time

from bots.channels.wechat.dedup import message_key
from bots.channels.wechat.envelope import Inbound
from bots.store import Claims


def first_use(claims: Claims, inbound: Inbound) -> bool:
    """True when this (timestamp, nonce) is new, or was used by this same message before."""
    key = f"wechat:nonce:{inbound.timestamp}:{inbound.nonce}"
    message = message_key(inbound.data)
    # Claimed and labelled with its message in one statement: a worker killed between two would
    # leave a nonce that WeChat's retry of the same message could not use.
    return claims.claim(key, time.time(), reply=message) or claims.claimed_reply(key) == message
