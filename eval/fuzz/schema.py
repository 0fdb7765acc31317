"""The JSON endpoints driven from the server's own OpenAPI schema by schemathesis (a maintained
API fuzzer), bounded in examples and time; a server error is a failure."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from eval.fuzz.target import AGENT_TOKEN


@dataclass
class SchemaRun:
    ran: bool
    passed: bool
    summary: str
    """schemathesis's own last lines (its counts of operations, test cases and failures)."""


def run_schemathesis(base: str, scratch: Path, max_examples: int, seconds: float) -> SchemaRun:
    """``schemathesis run`` over ``base``/openapi.json with the ``not_a_server_error`` check."""
    executable = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    if executable is None:
        return SchemaRun(False, False, "schemathesis is not installed (pip install -c constraints.txt schemathesis)")
    command = [
        executable,
        "run",
        f"{base}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        str(max_examples),
        "--header",
        f"Authorization: Bearer {AGENT_TOKEN}",
        "--request-timeout",
        "30",
        "--workers",
        "2",
        "--no-color",
    ]
    try:
        done = subprocess.run(command, cwd=scratch, capture_output=True, text=True, timeout=seconds)
    except subprocess.TimeoutExpired as timeout:
        output = timeout.stdout.decode(errors="replace") if isinstance(timeout.stdout, bytes) else (timeout.stdout or "")
        return SchemaRun(True, False, f"stopped after {seconds:.0f} s\n{_summary(output)}")
    return SchemaRun(True, done.returncode == 0, _summary(done.stdout + done.stderr))


def _summary(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    keep = [line for line in lines if re.search(r"(?i)operations|test cases|passed|failed|errors?|server error|summary", line)]
    return "\n".join((keep or lines)[-12:])
