"""The server under test: the real ``kb serve`` in its own process, over a copy of the
configuration with its own state store and demo orders (as :mod:`eval.kb_serve` does on the
benchmarks' side; copied, since eval never imports bots)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from eval.fuzz.fakes import TELEGRAM_TOKEN, WECHAT_APP_ID, WECHAT_APP_SECRET

ROOT = Path(__file__).resolve().parent.parent.parent

WECHAT_TOKEN = "fuzzwechattoken"
WECHAT_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
TELEGRAM_SECRET = "fuzz_webhook-secret"
AGENT_TOKEN = "fuzz-agent-token"
API_TOKEN = "fuzz-api-token"
"""For ``KB_API_TOKEN`` once /api/ask takes one (issue 19, item 2); ignored before."""


def environment(api_base: str) -> dict[str, str]:
    """The secrets the server reads from the environment, for the fakes on ``api_base``."""
    return {
        **os.environ,
        "WECHAT_TOKEN": WECHAT_TOKEN,
        "WECHAT_APP_ID": WECHAT_APP_ID,
        "WECHAT_APP_SECRET": WECHAT_APP_SECRET,
        "WECHAT_ENCODING_AES_KEY": WECHAT_AES_KEY,
        "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
        "KB_AGENT_TOKEN": AGENT_TOKEN,
        "KB_API_TOKEN": API_TOKEN,
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }


def sections(scratch: Path, api_base: str) -> dict[str, dict[str, Any]]:
    return {
        "engine": {"state_path": str(scratch / "state.sqlite")},
        "orders": {"demo_path": str(scratch / "orders.sqlite")},
        "wechat": {"api_base_url": f"{api_base}/cgi-bin/"},
        "telegram": {"base_url": f"{api_base}/bot"},
    }


def start(config: Path, port: int, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``kb --config CONFIG serve`` on ``127.0.0.1:port`` (access log on, as in production),
    its output into ``log``; returns once ``/healthz`` answers."""
    command = [sys.executable, "-m", "bots.cli", "--config", str(config), "serve", "--port", str(port), "--log-level", "info"]
    with log.open("wb") as output:
        server = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, env=env)
    end = time.monotonic() + 300
    try:
        while time.monotonic() < end:
            if server.poll() is not None:
                raise SystemExit(f"kb serve did not start:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit("kb serve did not start in 300 s")
    except BaseException:
        stop(server)
        raise


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
