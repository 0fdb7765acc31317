"""A signed request is used once: its (timestamp, nonce) is claimed in the state store, so
that a signature read from a log or the network cannot carry another body, in any worker.

WeChat's own retry of a message may come with the same timestamp and nonce; it carries the same
message, so it is let through (and :mod:`bots.channels.wechat.dedup` answers it once). The
nonce and the claim on the message are one call to the store (:meth:`Claims.claim_delivery`).
Timestamps outside the window are refused before this (:func:`~bots.channels.wechat.envelope.check_fresh`),
so remembering the nonces as long as the claims are kept covers the window.
"""

from __future__ import annotations

import time

from bots.channels.wechat.dedup import message_key
from bots.channels.wechat.envelope import Inbound
from bots.store import Claims


def claim(claims: Claims, inbound: Inbound, holder: str) -> tuple[bool, bool]:
    """(accepted, first): the request's (timestamp, nonce) is new or was used by this same
    message, and whether this is the message's first delivery (then ``holder`` has claimed it).
    One call to the store: the nonce, labelled with its message, and the claim on the message."""
    nonce = f"wechat:nonce:{inbound.timestamp}:{inbound.nonce}"
    return claims.claim_delivery(nonce, message_key(inbound.data), time.time(), holder)
