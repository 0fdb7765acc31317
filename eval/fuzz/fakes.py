"""WeChat's and Telegram's APIs as far as the server calls them, on one loopback port: the
WeChat access token and customer-service messages, and the Bot API methods the bot uses."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlparse

WECHAT_APP_ID = "wxfuzz0000000001"
WECHAT_APP_SECRET = "fuzz-app-secret"
TELEGRAM_TOKEN = "4242:fuzz-token"
BOT_USER = {"id": 4242, "is_bot": True, "first_name": "KB", "username": "kb_fuzz_bot"}


class FakeApis:
    """Both fakes; ``sent`` keeps what the server sent through either (for the leak check)."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.lock = threading.Lock()
        ids = count(1000)
        fakes = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, data: dict[str, Any], status: int = 200) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/cgi-bin/token" and query.get("appid") == WECHAT_APP_ID:
                    return self._json({"access_token": "FUZZACCESS", "expires_in": 7200})
                self._json({"errcode": 40013, "errmsg": "invalid appid"})

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8", "replace")
                with fakes.lock:
                    fakes.sent.append(raw)
                if self.path.startswith("/cgi-bin/"):
                    return self._json({"errcode": 0, "errmsg": "ok"})
                prefix = f"/bot{TELEGRAM_TOKEN}/"
                if not self.path.startswith(prefix):
                    return self._json({"ok": False, "error_code": 401, "description": "Unauthorized"}, 401)
                method = self.path[len(prefix) :]
                if "json" in (self.headers.get("Content-Type") or ""):
                    params = json.loads(raw or "{}")
                else:
                    params = dict(parse_qsl(raw))
                if method == "getMe":
                    return self._json({"ok": True, "result": BOT_USER})
                if method == "sendMessage":
                    chat = int(params.get("chat_id") or 0)
                    message = {
                        "message_id": next(ids),
                        "date": int(time.time()),
                        "chat": {"id": chat, "type": "private" if chat > 0 else "supergroup"},
                        "from": BOT_USER,
                        "text": str(params.get("text", "")),
                    }
                    return self._json({"ok": True, "result": message})
                self._json({"ok": True, "result": True})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
