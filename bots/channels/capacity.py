"""Worker threads by kind of request, so that one kind cannot starve another.

Engine work is CPU-bound and runs in worker threads. With one shared pool, a burst of
``/api/ask`` questions took every thread, and WeChat (5 seconds, then retries) and ``/healthz``
queued behind them. Each :class:`Lane` has its own limit on threads, and may bound the number of
requests waiting for one: beyond it, :class:`Saturated` at once (the server answers 503 with
``Retry-After``), rather than every request getting slower.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")


class Saturated(Exception):
    """Every worker of the lane is busy and its queue is full."""


class Lane:
    """At most ``workers`` calls at once in their own threads; at most ``queue`` more waiting
    (``None``: any number)."""

    def __init__(self, workers: int, queue: int | None = None) -> None:
        self.workers = workers
        self.queue = queue
        self.admitted = 0
        """Calls running or waiting (the event loop is one thread: a plain counter is enough)."""
        self._limiter: anyio.CapacityLimiter | None = None

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        if self._limiter is None:  # made on first use, inside the event loop
            self._limiter = anyio.CapacityLimiter(self.workers)
        return self._limiter

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in a worker thread of this lane; :class:`Saturated` when full."""
        if self.queue is not None and self.admitted >= self.workers + self.queue:
            raise Saturated
        self.admitted += 1
        try:
            return await anyio.to_thread.run_sync(function, *args, limiter=self.limiter)
        finally:
            self.admitted -= 1
