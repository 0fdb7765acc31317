"""How many cores this process may run on (its CPU affinity, which a container or ``taskset`` may
narrow below the machine's count)."""

from __future__ import annotations

import os


def usable_cores() -> int:
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
