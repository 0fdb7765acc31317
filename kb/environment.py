"""The process environment every entry point sets before any model library loads.

Called first by the ``kb`` command (:func:`bots.cli.main`), by each ``python -m eval.*`` main and
by the test suite's ``conftest.py``; importing a module never changes the environment.
"""

from __future__ import annotations

import os

DEFAULTS = {
    # Offline: nothing may try to download model weights at run time.
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HAYSTACK_TELEMETRY_ENABLED": "False",
    # OpenMP pools (FAISS's, torch's) that spin between parallel regions take a core from the
    # models answering the same question: Chinese questions took 25 ms instead of 18 (p50, 1,000
    # entries). Each OpenMP runtime reads it once, when it loads: FAISS, ONNX Runtime and torch
    # must not be imported before this is set.
    "OMP_WAIT_POLICY": "PASSIVE",
}


def set_environment_defaults() -> None:
    """Set :data:`DEFAULTS` where the environment does not say otherwise."""
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
