"""Benchmark of the conversation engine and ``kb serve``: prints figures, asserts nothing.

    python -m eval.bench_server                  # engine overhead + POST /api/ask load
    python -m eval.bench_server --requests 3000 --concurrency 16

1. Engine overhead: ``Engine.handle`` on the customer questions with the retriever's answers
   already cached, i.e. what the engine adds on top of retrieval (state store, triggers, log).
2. ``POST /api/ask`` over loopback against ``kb serve`` started in a subprocess: first every
   distinct customer question once (nothing cached: retrieval speed), then a realistic stream
   where popular questions repeat (Zipf-distributed, as customer-service traffic is).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from eval.dataset import load_queries
from eval.metrics import percentile

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


def engine_overhead(config_path: Path | None, texts: list[str]) -> None:
    from bots.conversation.engine import Engine
    from kb.config import load_config

    config = load_config(config_path)
    with tempfile.TemporaryDirectory() as state:
        config.extra = {**config.extra, "engine": {**config.extra.get("engine", {}), "state_path": f"{state}/state.sqlite"}}
        engine = Engine.from_config(config)
        engine.retriever.warm_up()
        for text in texts:
            engine.retriever.ask(text)  # cached from here on
        latencies = []
        for i, text in enumerate(texts):
            started = time.perf_counter()
            engine.handle("bench", f"user{i}", text)
            latencies.append((time.perf_counter() - started) * 1000)
    print("Engine (retrieval cached: what the engine adds)")
    print(figures("Engine.handle", latencies))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def serve_load(config_path: Path | None, texts: list[str], requests: int, concurrency: int) -> None:
    port = _free_port()
    command = [sys.executable, "-m", "bots.cli", *(["--config", str(config_path)] if config_path else [])]
    command += ["serve", "--port", str(port), "--log-level", "warning"]
    started = time.perf_counter()
    token = secrets.token_urlsafe(24)  # /api/ask with its key, as a deployment runs it
    environment = {**os.environ, "KB_API_TOKEN": token}
    server = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL, env=environment)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.perf_counter() - started > 300:
                raise SystemExit("kb serve did not start")
            time.sleep(0.2)
        print(f"POST /api/ask on loopback (kb serve up in {time.perf_counter() - started:.1f}s, {concurrency} clients)")
        latencies, seconds, errors = asyncio.run(_load(url, texts, concurrency, token))
        print(figures("every distinct question once", latencies, seconds) + f"  errors {errors}")
        rng = random.Random(7)
        weights = [1 / (rank + 1) for rank in range(len(texts))]
        stream = rng.choices(texts, weights=weights, k=requests)
        latencies, seconds, errors = asyncio.run(_load(url, stream, concurrency, token))
        print(figures("realistic stream (Zipf repeats)", latencies, seconds) + f"  errors {errors}")
    finally:
        server.terminate()
        server.wait(30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="configuration file (default: ./kb.toml)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    print(f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    texts = questions()
    engine_overhead(args.config, texts)
    serve_load(args.config, texts, args.requests, args.concurrency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
