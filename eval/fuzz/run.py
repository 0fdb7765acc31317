"""Send the probes, then look for what must not be there: 5xx, hangs, tracebacks in the
server's output, slow answers, disclosed orders, and raw personal data on disk or in the logs."""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from eval.fuzz import target
from eval.fuzz.attacks import EXPECTED, PENDING, TRACKING, Factory, Probe, Sequence, sequences
from eval.fuzz.fakes import FakeApis
from eval.fuzz.schema import SchemaRun, run_schemathesis
from eval.kb_serve import configuration_copy, free_port, start, stop


@dataclass
class Result:
    requests: int = 0
    seconds: float = 0.0
    by_class: dict[str, Counter] = field(default_factory=dict)
    """Class → status (or ``closed``, ``timeout``, ``error``) → count."""
    server_errors: int = 0
    slow: int = 0
    slowest: float = 0.0
    hangs: int = 0
    """Requests that got no answer within the client's timeout."""
    tracebacks: int = 0
    orders_disclosed: int = 0
    leaks: dict[str, list[str]] = field(default_factory=dict)
    """Where (database, WAL, log) → the raw personal values found there."""
    pending_leaks: dict[str, list[str]] = field(default_factory=dict)
    """The same for classes whose masking is still pending (:data:`attacks.PENDING`)."""
    signed_queries_in_log: int = 0
    schema: SchemaRun | None = None
    sent_pii: list[tuple[str, str]] = field(default_factory=list)
    """(value, class) of every piece of personal data sent."""

    @property
    def unexpected(self) -> dict[str, Counter]:
        """Class → statuses outside :data:`attacks.EXPECTED`."""
        out = {}
        for cls, counts in self.by_class.items():
            odd = Counter({s: n for s, n in counts.items() if s not in EXPECTED[cls]})
            if odd:
                out[cls] = odd
        return out

    @property
    def leak_count(self) -> int:
        return sum(len(values) for values in self.leaks.values())


def fuzz(
    requests: int,
    seconds: float,
    classes: list[str] | None = None,
    config: Path | None = None,
    workers: int = 8,
    slow_seconds: float = 4.5,
    seed: int = 19,
    huge_bytes: int = 2_000_000,
    schema_examples: int = 0,
    schema_seconds: float = 120.0,
    keep: Path | None = None,
    index_dir: Path | None = None,
) -> Result:
    """Start ``kb serve`` and the fakes, send about ``requests`` probes (stopping after
    ``seconds``), check what is left behind. ``schema_examples`` > 0 runs schemathesis too."""
    classes = classes or list(EXPECTED)
    with tempfile.TemporaryDirectory(prefix="kb-fuzz-") as temporary:
        scratch = keep or Path(temporary)
        scratch.mkdir(parents=True, exist_ok=True)
        apis = FakeApis()
        copy = configuration_copy(config, scratch / "kb.toml", target.sections(scratch, apis.base), index_dir)
        port = free_port()
        log = scratch / "server.log"
        server = start(copy, port, log, target.environment(apis.base), log_level="info")  # the access log is read
        base = f"http://127.0.0.1:{port}"
        result = Result()
        try:
            _send_all(result, base, classes, requests, seconds, workers, slow_seconds, seed, huge_bytes)
            if schema_examples:
                result.schema = run_schemathesis(base, scratch, schema_examples, schema_seconds)
            time.sleep(1.0)  # late WeChat answers and background writes
            state = scratch / "state.sqlite"
            running = _search({"database": state, "WAL": Path(f"{state}-wal")}, result.sent_pii)
        finally:
            stop(server)
            apis.close()
        after = _search({"database": state, "WAL": Path(f"{state}-wal"), "log": log}, result.sent_pii)
        for where, values in {**running, **after}.items():
            for value, cls in values:
                bucket = result.pending_leaks if cls in PENDING else result.leaks
                bucket.setdefault(where, [])
                if value not in bucket[where]:
                    bucket[where].append(value)
        text = log.read_text(encoding="utf-8", errors="replace")
        result.tracebacks = text.count("Traceback (most recent call last)")
        result.signed_queries_in_log = sum(1 for line in text.splitlines() if "signature=" in line)
        return result


def _send_all(
    result: Result, base: str, classes: list[str], requests: int, seconds: float, workers: int, slow: float, seed: int, huge: int
) -> None:
    factory = Factory(seed, huge)
    per_class = max(1, requests // len(classes))
    lock = threading.Lock()
    started = time.monotonic()
    end = started + seconds
    local = threading.local()

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=base, timeout=30)
        return local.client

    def run(sequence: Sequence) -> None:
        for probe in sequence:
            if time.monotonic() > end:
                return
            status, took, text = _send(client(), base, probe)
            with lock:
                result.requests += 1
                result.by_class.setdefault(probe.cls, Counter())[status] += 1
                result.server_errors += isinstance(status, int) and status >= 500
                result.hangs += status == "timeout"
                result.slow += took > slow
                result.slowest = max(result.slowest, took)
                result.orders_disclosed += any(t in text for t in TRACKING)
                result.sent_pii.extend((value, probe.cls) for value in probe.pii)

    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(run, sequences(factory, classes, per_class)):
            pass
    result.seconds = time.monotonic() - started


def _send(http: httpx.Client, base: str, probe: Probe) -> tuple[int | str, float, str]:
    started = time.monotonic()
    if probe.truncate_to is not None:
        return _truncated(base, probe), time.monotonic() - started, ""
    try:
        response = http.request(probe.method, probe.path, params=probe.params, headers=probe.headers, content=probe.body)
        return response.status_code, time.monotonic() - started, response.text[:20_000]
    except httpx.TimeoutException:
        return "timeout", time.monotonic() - started, ""
    except httpx.HTTPError as error:
        return f"error:{type(error).__name__}", time.monotonic() - started, ""


def _truncated(base: str, probe: Probe) -> int | str:
    """Announce the whole body, send part of it, hang up: the server must cope (no 5xx, no hang)."""
    host, port = base.removeprefix("http://").split(":")
    body = probe.body or b""
    path = probe.path + (f"?{urlencode(probe.params)}" if probe.params else "")
    head = [f"{probe.method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in probe.headers.items()]
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body[: probe.truncate_to])
        sock.shutdown(socket.SHUT_WR)
        try:
            answer = sock.recv(64)
        except TimeoutError:
            return "timeout"
    if not answer:
        return "closed"
    parts = answer.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else "closed"


def _search(files: dict[str, Path], sent: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    """Which sent values are found raw in which file (UTF-8, as SQLite and the log write them)."""
    found: dict[str, list[tuple[str, str]]] = {}
    unique = dict(sent)
    for where, path in files.items():
        if not path.exists():
            continue
        data = path.read_bytes()
        hits = [(value, cls) for value, cls in unique.items() if value.encode() in data]
        if hits:
            found[where] = hits
    return found


def report(result: Result) -> str:
    """The figures, as printed by ``python -m eval.fuzz``."""
    lines = [f"{result.requests} requests in {result.seconds:.1f} s", "", "class                    statuses"]
    for cls in sorted(result.by_class):
        counts = ", ".join(f"{s}: {n}" for s, n in sorted(result.by_class[cls].items(), key=lambda kv: str(kv[0])))
        lines.append(f"  {cls:22} {counts}")
    lines += [
        "",
        f"5xx: {result.server_errors}   tracebacks in the server's output: {result.tracebacks}   "
        f"no answer (timeout): {result.hangs}",
        f"slow answers: {result.slow} (slowest {result.slowest:.2f} s)   orders disclosed: {result.orders_disclosed}",
        f"raw personal data found: {result.leak_count} {_where(result.leaks)} {_examples(result.leaks)}",
        f"  ... of the pending masking classes: {sum(map(len, result.pending_leaks.values()))} {_where(result.pending_leaks)}",
        f"log lines with a signed query string: {result.signed_queries_in_log}",
    ]
    unexpected = result.unexpected
    if unexpected:
        lines += ["", "statuses other than expected:"]
        for cls, counts in sorted(unexpected.items()):
            note = f"  (pending: {PENDING[cls]})" if cls in PENDING else ""
            lines.append(f"  {cls:22} {dict(counts)}{note}")
    if result.schema is not None:
        verdict = "passed" if result.schema.passed else ("did not run" if not result.schema.ran else "FAILED")
        lines += ["", f"schemathesis (not_a_server_error): {verdict}", result.schema.summary]
    return "\n".join(lines)


def _examples(found: dict[str, list[str]]) -> str:
    values = sorted({v for vs in found.values() for v in vs})
    return ("e.g. " + ", ".join(values[:3])) if values else ""


def _where(found: dict[str, list[Any]]) -> str:
    return "(" + ", ".join(f"{w}: {len(v)}" for w, v in found.items()) + ")" if found else ""
