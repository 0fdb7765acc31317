"""One customer's state is changed by one thread at a time, whoever changes it: the engine for
the customer's message, the desk for an agent's action."""

from __future__ import annotations

import threading

_STRIPES = 256


class CustomerLocks:
    """A fixed set of locks shared by hash: one customer's messages stay in order, and memory
    does not grow with the number of customers a long-running server has seen."""

    def __init__(self, stripes: int = _STRIPES) -> None:
        self._locks = [threading.RLock() for _ in range(stripes)]

    def __call__(self, channel: str, user_id: str) -> threading.RLock:
        return self._locks[hash((channel, user_id)) % len(self._locks)]
