"""Benchmark of the conversation engine and ``kb serve``: prints figures, asserts nothing.

    python -m eval.bench_server                  # engine overhead + POST /api/ask load
    python -m eval.bench_server --requests 3000 --concurrency 16

Both against ``kb serve`` started in a subprocess (over a copy of the configuration with a fresh
state store), over loopback:

1. ``POST /api/ask``: first every distinct customer question once (nothing cached: retrieval
   speed), then a realistic stream where popular questions repeat (Zipf-distributed, as
   customer-service traffic is).
2. Engine overhead: each customer question once more, now through the whole engine (with a user
   id), one at a time, the retriever's answers being cached by then: what the engine adds on top
   of retrieval (state store, triggers, log), as its own time in the question log.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import httpx

from eval.dataset import load_queries
from eval.kb_serve import configuration_copy, engine_times, free_port, start, stop
from eval.metrics import percentile
from kb.environment import set_environment_defaults

ROOT = Path(__file__).resolve().parent.parent
SETS = [ROOT / "eval" / "customer_zh", ROOT / "eval" / "customer_en"]


def questions() -> list[str]:
    seen: dict[str, None] = {}
    for folder in SETS:
        for query in load_queries(folder):
            seen.setdefault(query.text, None)
    return list(seen)


def figures(label: str, latencies_ms: list[float], seconds: float | None = None) -> str:
    line = f"  {label:38s} n={len(latencies_ms):5d}  p50 {percentile(latencies_ms, 50):7.2f} ms  "
    line += f"p95 {percentile(latencies_ms, 95):7.2f} ms  p99 {percentile(latencies_ms, 99):7.2f} ms"
    if seconds:
        line += f"  {len(latencies_ms) / seconds:6.1f} req/s"
    return line


def engine_overhead(url: str, state: Path, texts: list[str]) -> None:
    """Each question through the whole engine, one at a time (the answers are cached by now)."""
    since = time.time()
    with httpx.Client(base_url=url, timeout=60) as client:
        for i, text in enumerate(texts):
            client.post("/api/ask", json={"question": text, "user_id": f"user{i}", "channel": "bench"}).raise_for_status()
    print("Engine (retrieval cached: what the engine adds; its own time, from the question log)")
    print(figures("Engine.handle", engine_times(state, since, "bench")))


async def _load(url: str, stream: list[str], concurrency: int, token: str) -> tuple[list[float], float, int]:
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[str] = asyncio.Queue()
    for text in stream:
        queue.put_nowait(text)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while not queue.empty():
            text = queue.get_nowait()
            started = time.perf_counter()
            response = await client.post("/api/ask", json={"question": text})
            latencies.append((time.perf_counter() - started) * 1000)
            errors += response.status_code != 200

    limits = httpx.Limits(max_connections=concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits, headers=headers) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return latencies, time.perf_counter() - started, errors


def serve_load(url: str, texts: list[str], requests: int, concurrency: int) -> None:
    print(f"POST /api/ask on loopback ({concurrency} clients)")
    latencies, seconds, errors = asyncio.run(_load(url, texts, concurrency))
    print(figures("every distinct question once", latencies, seconds) + f"  errors {errors}")
    rng = random.Random(7)
    weights = [1 / (rank + 1) for rank in range(len(texts))]
    stream = rng.choices(texts, weights=weights, k=requests)
    latencies, seconds, errors = asyncio.run(_load(url, stream, concurrency))
    print(figures("realistic stream (Zipf repeats)", latencies, seconds) + f"  errors {errors}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="configuration file (default: ./kb.toml)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    set_environment_defaults()
    print(f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    texts = questions()
    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder) / "state.sqlite"
        config = configuration_copy(args.config, Path(folder) / "kb.toml", {"engine": {"state_path": str(state)}})
        port = free_port()
        started = time.perf_counter()
        server = start(config, port, Path(folder) / "server.log")
        print(f"kb serve up in {time.perf_counter() - started:.1f}s")
        try:
            url = f"http://127.0.0.1:{port}"
            serve_load(url, texts, args.requests, args.concurrency)
            engine_overhead(url, state, texts)
        finally:
            stop(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
