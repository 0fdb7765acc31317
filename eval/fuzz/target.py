"""The server under test: the real ``kb serve`` in its own process (started by
:mod:`eval.kb_serve`, as for the benchmarks), over a copy of the configuration with its own state
store and demo orders, and the fake WeChat and Telegram APIs as its peers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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
