"""Benchmark of the web desk: prints figures, asserts nothing.

    python -m eval.bench_desk                    # 1,000 open tickets
    python -m eval.bench_desk --tickets 2000 --rounds 50

``kb serve`` in a subprocess over a copy of the configuration with a fresh state store, over
loopback (nothing here imports ``bots``):

1. ``--tickets`` customers ask for a person through ``POST /api/ask`` (the engine's own handoff
   path), so the queue holds that many open tickets; an agent account is added with
   ``kb desk add-user``.
2. The queue page, its polled rows and a ticket page, ``--rounds`` times each: the server's
   time (the desk's ``Server-Timing`` header) and the time seen by the client. Target: 200 ms.
3. Search: the customer questions, each asked once (nothing cached), half through the desk's
   search page and half through ``POST /api/ask`` without a user id (``kb ask``'s pipeline);
   the p95 of both as the client sees them. Target: the desk within 5 ms of ``kb ask``.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from eval.bench_server import questions
from eval.kb_serve import ROOT, configuration_copy, free_port, start, stop
from eval.metrics import percentile
from kb.environment import set_environment_defaults

PASSWORD = "bench password 1234"
TARGET_PAGE_MS = 200.0
TARGET_SEARCH_MS = 5.0


def line(label: str, values: list[float]) -> str:
    return (
        f"  {label:34s} n={len(values):4d}  p50 {percentile(values, 50):7.1f} ms  "
        f"p95 {percentile(values, 95):7.1f} ms  max {max(values):7.1f} ms"
    )


def server_ms(response: httpx.Response) -> float:
    found = re.search(r"dur=([\d.]+)", response.headers.get("server-timing", ""))
    if not found:
        raise SystemExit(f"no Server-Timing on {response.request.url} ({response.status_code})")
    return float(found.group(1))


async def open_tickets(url: str, count: int, concurrency: int = 8) -> None:
    """``count`` customers write 转人工 through the API; a shed request (503) is tried again."""
    queue = list(range(count))

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            i = queue.pop()
            while True:
                r = await client.post("/api/ask", json={"question": "转人工", "user_id": f"bench-{i}"})
                if r.status_code != 503:
                    r.raise_for_status()
                    break
                await asyncio.sleep(0.05)

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))


def sign_in(client: httpx.Client) -> str:
    form = client.get("/desk/sign-in")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    signed = client.post("/desk/sign-in", data={"csrf": token, "name": "bench", "password": PASSWORD})
    if signed.status_code != 303:
        raise SystemExit(f"sign-in failed: {signed.status_code}")
    page = client.get("/desk/queue")
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]


def timed(client: httpx.Client, method: str, path: str, rounds: int, **kwargs: object) -> tuple[list[float], list[float]]:
    server, seen = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        response = client.request(method, path, **kwargs)  # type: ignore[arg-type]
        seen.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{path}: {response.status_code}")
        server.append(server_ms(response))
    return server, seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--config", help="configuration file (default: $KB_CONFIG or ./kb.toml)")
    args = parser.parse_args()
    set_environment_defaults()
    with tempfile.TemporaryDirectory(prefix="kb-bench-desk-") as folder:
        work = Path(folder)
        sections = {"engine": {"state_path": str(work / "state.sqlite")}, "orders": {"demo_path": str(work / "orders.sqlite")}}
        config = configuration_copy(args.config, work / "kb.toml", sections)
        command = [sys.executable, "-m", "bots.cli", "--config", str(config), "desk", "add-user", "bench", "--role", "agent"]
        subprocess.run([*command, "--language", "en"], input=PASSWORD + "\n", text=True, check=True, cwd=ROOT)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start(config, port, work / "serve.log")
        try:
            started = time.perf_counter()
            asyncio.run(open_tickets(url, args.tickets))
            print(f"desk: {args.tickets} open tickets made in {time.perf_counter() - started:.1f} s (POST /api/ask 转人工)")
            with httpx.Client(base_url=url, timeout=60, follow_redirects=False) as client:
                csrf = sign_in(client)
                ticket = re.search(r'data-ticket="([^"]+)"', client.get("/desk/queue").text).group(1)  # type: ignore[union-attr]
                print(f"desk pages with {args.tickets} open tickets (server time; target ≤ {TARGET_PAGE_MS:.0f} ms):")
                for label, path in (("queue page", "/desk/queue"), ("queue rows (poll)", "/desk/queue/rows"),
                                    ("ticket page", f"/desk/tickets/{ticket}")):  # fmt: skip
                    server_times, seen = timed(client, "GET", path, args.rounds)
                    print(line(f"{label} server", server_times))
                    print(line(f"{label} client", seen))
                asked = questions()
                desk_times, api_times = [], []
                for i, question in enumerate(asked):
                    started = time.perf_counter()
                    if i % 2:
                        r = client.post("/api/ask", json={"question": question})
                        api_times.append((time.perf_counter() - started) * 1000)
                    else:
                        r = client.post("/desk/search", data={"csrf": csrf, "q": question})
                        desk_times.append((time.perf_counter() - started) * 1000)
                    r.raise_for_status()
            print(f"search, each question once (client time; target: desk p95 within {TARGET_SEARCH_MS:.0f} ms of kb ask's):")
            print(line("desk search (POST /desk/search)", desk_times))
            print(line("kb ask's pipeline (POST /api/ask)", api_times))
            gap = percentile(desk_times, 95) - percentile(api_times, 95)
            print(f"  desk p95 − kb ask p95: {gap:+.1f} ms")
        finally:
            stop(server)


if __name__ == "__main__":
    main()
