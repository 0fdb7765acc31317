"""Benchmark of ``kb serve``: SQLite and PostgreSQL state, one and several workers, side by side in
one run; prints one table, asserts nothing.

    python -m eval.bench_server                               # --workers 1 2 --state sqlite postgres
    python -m eval.bench_server --workers 1 --state sqlite --requests 3000 --concurrency 16

For each state store and number of workers, the real ``kb serve [--workers N]`` starts in its own
process (over a copy of the configuration with a fresh state store: a SQLite file, or a new
database on a throwaway PostgreSQL cluster, :mod:`eval.postgres_cluster`) and gets, over loopback,
``POST /api/ask`` with a ``user_id`` (the whole engine: conversation, question log, triggers, the
state store on every message):

1. new questions: every distinct customer question once (nothing cached: retrieval speed);
2. a realistic stream: popular questions repeat (Zipf-distributed, as customer-service traffic
   is), a customer's messages far apart, as customers wait for answers.

Columns: requests/s and p99 of each phase, the engine's own time per message (p50, from the
question log), CPU per request of ``kb serve`` and of PostgreSQL's server processes, errors
(non-200 and broken connections), resident memory per worker. Other processes on the machine
share its cores (the load average is printed): ``--rounds N`` runs every configuration N times,
in turn, and keeps each one's best.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from eval.dataset import load_queries
from eval.kb_serve import configuration_copy, cpu_seconds, engine_times, free_port, processes, resident_mb, start, stop
from eval.loopback import Connections, http_post
from eval.metrics import percentile
from eval.postgres_cluster import PostgresServer, cluster_for
from kb.environment import set_environment_defaults

ROOT = Path(__file__).resolve().parent.parent
SETS = [ROOT / "eval" / "customer_zh", ROOT / "eval" / "customer_en"]
WARMUP = ["你好", "hello", "谢谢", "thanks", "在吗", "hi there"]


def questions() -> list[str]:
    seen: dict[str, None] = {}
    for folder in SETS:
        for query in load_queries(folder):
            seen.setdefault(query.text, None)
    return list(seen)


@dataclass
class Phase:
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int
    engine_ms: list[float]
    server_cpu: float
    state_cpu: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def p99(self) -> float:
        return percentile(self.latencies_ms, 99)


@dataclass
class Run:
    state: str
    workers: int
    new: Phase
    stream: Phase
    worker_mb: float


async def _load(port: int, messages: list[tuple[str, str]], concurrency: int) -> tuple[list[float], float, int]:
    """POST each (user, question) of ``messages``, ``concurrency`` at a time: latencies (ms), seconds, errors."""
    host = "127.0.0.1"
    requests = [
        http_post(host, port, "/api/ask", json.dumps({"question": text, "user_id": user}).encode(), "application/json")
        for user, text in messages
    ]
    connections = Connections(host, port)
    latencies: list[float] = []
    errors = 0
    queue = list(reversed(requests))

    async def client() -> None:
        nonlocal errors
        while queue:
            request = queue.pop()
            started = time.perf_counter()
            try:
                status, _ = await connections.post(request)
                errors += status != 200
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors += 1
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    connections.close()
    return latencies, seconds, errors


def phase(
    port: int, pids: list[int], state: Path | str, messages: list[tuple[str, str]], concurrency: int, database: int | None
) -> Phase:
    """One phase; ``database``: the PostgreSQL server's main process, whose CPU is counted too."""
    state_pids = processes(database) if database else []
    since, cpu_before, state_before = time.time(), cpu_seconds(pids), cpu_seconds(state_pids)
    latencies, seconds, errors = asyncio.run(_load(port, messages, concurrency))
    server_cpu = cpu_seconds(pids) - cpu_before
    # Backends started during the phase are missed at its start: count them from zero at its end.
    state_cpu = cpu_seconds(processes(database)) - state_before if database else 0.0
    return Phase(len(messages), seconds, latencies, errors, engine_times(state, since, "api"), server_cpu, state_cpu)


def streams(texts: list[str], requests: int, seed: int = 7) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Every question once, each from a new customer; then a Zipf stream where a customer's three
    messages are a third of the stream apart."""
    new = [(f"new-{i}", text) for i, text in enumerate(texts)]
    weights = [1 / (rank + 1) for rank in range(len(texts))]
    picked = random.Random(seed).choices(texts, weights=weights, k=requests)
    customers = max(1, requests // 3)
    return new, [(f"zipf-{i % customers}", text) for i, text in enumerate(picked)]


def one_run(args: argparse.Namespace, state_kind: str, workers: int, cluster: PostgresServer | None, folder: Path) -> Run:
    texts = questions()
    new, stream = streams(texts, args.requests)
    where = folder / f"{state_kind}-{workers}"
    where.mkdir(parents=True)
    if cluster is not None:
        state: Path | str = cluster.new_database()
        engine = {"state_url": state, "state_pool_size": args.pool_size}
    else:
        state = where / "state.sqlite"
        engine = {"state_path": str(state)}
    config = configuration_copy(args.config, where / "kb.toml", {"engine": engine})
    env = {k: v for k, v in os.environ.items() if k not in ("KB_STATE_URL", "KB_API_TOKEN")}  # loopback: no key
    port = free_port()
    server = start(config, port, where / "server.log", env, workers)
    try:
        pids = processes(server.pid)
        asyncio.run(_load(port, [(f"warm-{i}", WARMUP[i % len(WARMUP)]) for i in range(8 * workers)], args.concurrency))
        database = cluster.main_pid() if cluster is not None else None
        first = phase(port, pids, state, new, args.concurrency, database)
        second = phase(port, pids, state, stream, args.concurrency, database)
        worker_mb = max(resident_mb(pid) for pid in pids)
    finally:
        stop(server)
    return Run(state_kind, workers, first, second, worker_mb)


def best(runs: list[Run]) -> list[Run]:
    """Each configuration once, with the best of its rounds for each phase (other processes only
    ever slow a round down)."""
    kept: dict[tuple[str, int], Run] = {}
    for run in runs:
        seen = kept.setdefault((run.state, run.workers), run)
        if run.new.per_second > seen.new.per_second:
            seen.new = run.new
        if run.stream.per_second > seen.stream.per_second:
            seen.stream = run.stream
    return list(kept.values())


def table(runs: list[Run]) -> str:
    lines = [
        "| state | workers | new: req/s | new: p99 ms | Zipf: req/s | Zipf: p99 ms | engine p50 ms "
        "| CPU ms/req new, Zipf: kb serve (+ PostgreSQL) | errors | MB/worker |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        engine = run.new.engine_ms + run.stream.engine_ms
        cpu = []
        for part in (run.new, run.stream):
            figure = f"{part.server_cpu / part.requests * 1000:.1f}"
            if run.state == "postgres":
                figure += f" (+{part.state_cpu / part.requests * 1000:.1f})"
            cpu.append(figure)
        lines.append(
            f"| {run.state} | {run.workers} | {run.new.per_second:.1f} | {run.new.p99:.0f} | {run.stream.per_second:.1f} | "
            f"{run.stream.p99:.0f} | {percentile(engine, 50):.1f} | {', '.join(cpu)} | {run.new.errors + run.stream.errors} | "
            f"{run.worker_mb:.0f} |"
        )
    return "\n".join(lines)


def verdicts(runs: list[Run]) -> list[str]:
    """The targets of issue 22, where the run has the figures for them."""
    by = {(run.state, run.workers): run for run in runs}
    said = []
    sqlite, postgres = by.get(("sqlite", 1)), by.get(("postgres", 1))
    if sqlite and postgres:
        for name in ("new", "stream"):
            ratio = getattr(postgres, name).per_second / getattr(sqlite, name).per_second
            said.append(f"PostgreSQL / SQLite throughput, 1 worker, {name}: {ratio:.2f} (target ≥ 0.85)")
    for state in ("sqlite", "postgres"):
        one, two = by.get((state, 1)), by.get((state, 2))
        if one and two:
            for name in ("new", "stream"):
                ratio = getattr(two, name).per_second / getattr(one, name).per_second
                said.append(f"{state}: 2 workers / 1 worker throughput, {name}: {ratio:.2f} (target ≥ 1.0)")
    return said


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eval.bench_server", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, help="configuration file (default: $KB_CONFIG or ./kb.toml)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="kb serve --workers, each in turn (default 1 2)")
    parser.add_argument("--state", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"])
    parser.add_argument("--requests", type=int, default=2000, help="requests in the realistic stream (default 2000)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests under way at once (default 16)")
    parser.add_argument("--rounds", type=int, default=1, help="each configuration this often, in turn; its best kept")
    parser.add_argument("--pool-size", type=int, default=20, help="[engine] state_pool_size with PostgreSQL (default 20)")
    args = parser.parse_args(argv)
    set_environment_defaults()
    from eval.report import machine  # loads the retriever (FAISS...): after the environment is set

    cluster = cluster_for(args.state)
    print(f"{machine()}; {args.concurrency} clients on loopback, {args.requests} requests in the Zipf stream")
    load_before = os.getloadavg()[0]
    runs: list[Run] = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            for round_ in range(args.rounds):
                for workers in args.workers:  # both stores with one number of workers, one after the other
                    for state in args.state:
                        run = one_run(args, state, workers, cluster if state == "postgres" else None, Path(folder) / str(round_))
                        runs.append(run)
                        print(f"  {state}, {workers} worker(s): done", flush=True)
    finally:
        if cluster is not None:
            cluster.stop()
    print()
    runs = best(runs)
    print(table(runs))
    print()
    for line in verdicts(runs):
        print(line)
    print(f"load average (other processes share these cores): {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
