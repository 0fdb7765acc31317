"""Benchmark: the WeChat webhook under concurrent signed requests on loopback; prints figures,
asserts nothing.

    python -m eval.bench_wechat                          # 32 at a time, plaintext mode, --workers 1 2 --state sqlite postgres
    python -m eval.bench_wechat --mode safe --requests 3000 --concurrency 64
    python -m eval.bench_wechat --rate 100               # open loop: 100 messages arrive per second

``kb serve [--workers N]`` (over the configured knowledge base, with a fresh state store, SQLite or
a database on a throwaway PostgreSQL cluster, and a ``[wechat]`` section pointing at the fake API
below) runs in its own process, as in production, for each state store and number of workers in
turn; a table at the end puts them side by side. This process
sends text messages built and signed as WeChat's server sends them (AES-encrypted with
``--mode safe``), each from a new customer, over hand-written keep-alive HTTP/1.1 (an HTTP client
library would spend more CPU than the webhook and measure itself), and runs a fake of WeChat's API
for the customer-service messages that handoffs send. Two phases, as ``eval.bench_server``: every
distinct customer question once (nothing cached: retrieval speed), then a realistic stream where
popular questions repeat (Zipf). For each: messages/s, latency p50/p95/p99, replies later than
4.5 s, CPU per message of the server and of this generator, and the engine's own time from the
question log.
Targets: ≥ 100 messages/s with p99 < 1 s, and no reply later than 4.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from eval.bench_server import questions
from eval.kb_serve import configuration_copy, cpu_seconds, engine_times, free_port, processes, start, stop
from eval.loopback import Connections, http_post
from eval.metrics import percentile
from eval.postgres_cluster import PostgresServer, cluster_for
from kb.environment import set_environment_defaults

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "benchtoken"
APP_ID = "wxbench0000000000"
APP_SECRET = "benchsecret"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
LATE = 4.5


# The client side


class FakeApi:
    """WeChat's token and customer-service message endpoints, counting the messages."""

    def __init__(self) -> None:
        self.sent = 0
        lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, data: dict[str, Any]) -> None:
                body = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._reply({"access_token": "BENCHTOKEN", "expires_in": 7200})

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    api.sent += 1
                self._reply({"errcode": 0, "errmsg": "ok"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cgi-bin/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def sha1(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def signed(mode: str, user: str, text: str, msg_id: int) -> tuple[dict[str, str], bytes]:
    """Query and body of WeChat's POST for one text message."""
    xml = (
        f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{text}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    )
    timestamp, nonce = str(int(time.time())), str(msg_id)
    query = {"signature": sha1(TOKEN, timestamp, nonce), "timestamp": timestamp, "nonce": nonce, "openid": user}
    if mode == "plain":
        return query, xml.encode()
    from wechatpy.crypto import WeChatCrypto

    envelope = WeChatCrypto(TOKEN, AES_KEY, APP_ID).encrypt_message(xml, nonce, timestamp)
    encrypt = envelope.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
    query.update(encrypt_type="aes", msg_signature=sha1(TOKEN, timestamp, nonce, encrypt))
    body = f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    return query, body.encode()


def kind_of(status: int, body: bytes) -> str:
    if status != 200:
        return f"http {status}"
    if body == b"success":
        return "success"
    if b"transfer_customer_service" in body:
        return "transfer"
    if b"<Encrypt>" in body:
        return "encrypted reply"
    return "text" if b"<MsgType><![CDATA[text]]>" in body else "other"


async def load(url: str, args: argparse.Namespace, stream: list[str], run: str) -> tuple[list[float], Counter[str], float]:
    """Send the messages of ``stream``, ``args.concurrency`` at a time (or arriving at
    ``args.rate`` per second); latencies, reply kinds, seconds. ``run`` keeps customers and
    message ids apart from another phase's (a repeated id would be deduplicated)."""
    host, port = "127.0.0.1", int(url.rsplit(":", 1)[1])
    id_base = int(hashlib.sha1(run.encode()).hexdigest()[:8], 16) * 10**6
    requests = []
    for i, text in enumerate(stream):  # built and signed beforehand: the timed loop only sends
        query, body = signed(args.mode, f"o-{run}-{i // args.messages_per_user}", text, id_base + i)
        requests.append(http_post(host, port, "/wechat?" + urlencode(query), body))
    latencies: list[float] = []
    kinds: Counter[str] = Counter()
    connections = Connections(host, port)
    limit = asyncio.Semaphore(args.concurrency if not args.rate else 1000)

    async def one(i: int) -> None:
        if args.rate:  # open loop: message i arrives at i / rate seconds, whatever came before
            await asyncio.sleep(max(0.0, begin + i / args.rate - time.perf_counter()))
        async with limit:
            started = time.perf_counter()
            try:
                status, body = await connections.post(requests[i])
                kinds[kind_of(status, body)] += 1
            except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                kinds[type(error).__name__] += 1
            latencies.append(time.perf_counter() - started)

    begin = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(len(stream))))
    elapsed = time.perf_counter() - begin
    connections.close()
    return latencies, kinds, elapsed


def drain(state: Path | str, since: float, messages: int, timeout: float = 180) -> None:
    """Wait until the engine has answered every message of a phase (the late ones too), so that
    a backlog does not spill into the next phase's figures."""
    end = time.monotonic() + timeout
    while len(engine_times(state, since, "wechat")) < messages and time.monotonic() < end:
        time.sleep(0.2)
    time.sleep(0.3)  # the last customer-service messages


def run(args: argparse.Namespace) -> int:
    from eval.report import machine  # loads the retriever (FAISS...): after main() has set the environment

    api = FakeApi()
    texts = questions()
    weights = [1 / (rank + 1) for rank in range(len(texts))]
    phases = [
        ("every distinct question once", texts),
        ("realistic stream (Zipf repeats)", random.Random(7).choices(texts, weights=weights, k=args.requests)),
    ]
    load_before = os.getloadavg()[0]
    arrival = f"arriving at {args.rate:g}/s" if args.rate else f"{args.concurrency} at a time"
    print(
        f"{machine()}; {args.mode} mode, {arrival}, {args.messages_per_user} message(s) per customer, "
        f"max_concurrent_answers {args.max_concurrent_answers}"
    )
    cluster = cluster_for(args.state)
    rows: list[str] = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            for workers in args.workers:  # both stores with one number of workers, one after the other
                for state in args.state:
                    where = Path(folder) / f"{state}-{workers}"
                    where.mkdir()
                    print(f"\n== {state}, {workers} worker(s)")
                    figures = one_server(args, api, phases, where, workers, cluster if state == "postgres" else None)
                    rows.append(f"| {state} | {workers} | " + " | ".join(figures) + " |")
    finally:
        if cluster is not None:
            cluster.stop()
    print("\n| state | workers | new: msg/s | new: p99 ms | new: late | Zipf: msg/s | Zipf: p99 ms | Zipf: late |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    print(f"load average (other processes share these cores): {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    return 0


def one_server(
    args: argparse.Namespace,
    api: FakeApi,
    phases: list[tuple[str, list[str]]],
    folder: Path,
    workers: int,
    cluster: PostgresServer | None,
) -> list[str]:
    """``kb serve`` over a fresh state store, both phases: the table's figures (msg/s, p99, late)."""
    state: Path | str = cluster.new_database() if cluster is not None else folder / "state.sqlite"
    wechat = {
        "token": TOKEN,
        "app_id": APP_ID,
        "app_secret": APP_SECRET,
        "encoding_aes_key": AES_KEY,
        "api_base_url": api.url,
        "max_concurrent_answers": args.max_concurrent_answers,
    }
    engine = {"state_url": state, "state_pool_size": args.pool_size} if isinstance(state, str) else {"state_path": str(state)}
    config = configuration_copy(args.config, folder / "kb.toml", {"engine": engine, "wechat": wechat})
    # The [wechat] section above, not the credentials of a real account in this environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith("WECHAT_") and k != "KB_STATE_URL"}
    port = args.port or free_port()
    server = start(config, port, folder / "server.log", env, workers)
    url = f"http://127.0.0.1:{port}"
    figures: list[str] = []
    try:
        pids = processes(server.pid)
        asyncio.run(load(url, args, ["你好", "hello", "谢谢"] * 10 * workers, "warmup"))  # connections, not answers
        for number, (label, stream) in enumerate(phases):
            since, server_before, own_before, sent_before = time.time(), cpu_seconds(pids), time.process_time(), api.sent
            latencies, kinds, seconds = asyncio.run(load(url, args, stream, f"phase{number}"))
            server_cpu, own_cpu = cpu_seconds(pids) - server_before, time.process_time() - own_before
            drain(state, since, len(stream))
            engine_ms = engine_times(state, since, "wechat")
            report(label, latencies, kinds, seconds, server_cpu, own_cpu, engine_ms, api.sent - sent_before)
            ms = [t * 1000 for t in latencies]
            late = sum(1 for t in latencies if t > LATE)
            figures += [f"{len(latencies) / seconds:.1f}", f"{percentile(ms, 99):.0f}", str(late)]
    finally:
        stop(server)
    return figures


def report(
    label: str,
    latencies: list[float],
    kinds: Counter[str],
    seconds: float,
    server_cpu: float,
    own_cpu: float,
    engine_ms: list[float],
    api_messages: int,
) -> None:
    n = len(latencies)
    ms = [t * 1000 for t in latencies]
    late = sum(1 for t in latencies if t > LATE)
    print(f"\n{label}: {n} messages")
    print(
        f"  {n / seconds:6.1f} messages/s   p50 {percentile(ms, 50):6.0f} ms   p95 {percentile(ms, 95):6.0f} ms   "
        f"p99 {percentile(ms, 99):6.0f} ms   max {max(ms):6.0f} ms   later than {LATE:g} s: {late}"
    )
    print("  replies: " + ", ".join(f"{kind} {count}" for kind, count in kinds.most_common()))
    print(f"  customer-service messages sent (handoff notices, late answers): {api_messages}")
    print(
        f"  CPU per message: server {server_cpu / n * 1000:.1f} ms ({server_cpu / seconds:.2f} cores busy), "
        f"this generator {own_cpu / n * 1000:.1f} ms"
    )
    if engine_ms:
        print(
            f"  engine time per message (question log, includes waiting for the embedder): "
            f"p50 {percentile(engine_ms, 50):.1f} ms, p95 {percentile(engine_ms, 95):.1f} ms, "
            f"total {sum(engine_ms) / 1000:.1f} s in {seconds:.1f} s"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eval.bench_wechat", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", help="configuration file (default: $KB_CONFIG or ./kb.toml)")
    parser.add_argument("--requests", type=int, default=3000, help="messages in the realistic stream (default 3000)")
    parser.add_argument("--concurrency", type=int, default=32, help="messages under way at once (default 32)")
    parser.add_argument("--rate", type=float, default=0.0, help="open loop: messages arriving per second instead")
    parser.add_argument("--messages-per-user", type=int, default=1, help="messages each customer sends (default 1)")
    parser.add_argument("--mode", choices=["plain", "safe"], default="plain")
    parser.add_argument(
        "--max-concurrent-answers", type=int, default=16, help="[wechat] max_concurrent_answers of the server (default 16)"
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="kb serve --workers, each in turn (default 1 2)")
    parser.add_argument("--state", nargs="+", choices=["sqlite", "postgres"], default=["sqlite", "postgres"])
    parser.add_argument("--pool-size", type=int, default=20, help="[engine] state_pool_size with PostgreSQL (default 20)")
    parser.add_argument("--port", type=int, default=0, help="the server's port (default: a free one)")
    args = parser.parse_args(argv)
    set_environment_defaults()
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
