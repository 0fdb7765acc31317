"""What keeps ``kb serve``'s HTTP surface closed: the key of ``POST /api/ask`` (or its
loopback-only demo mode), a body limit checked before a body is read, and signed query strings
kept out of the access log.

``/api/ask`` with a ``user_id`` acts as a customer: it opens tickets and reads orders. With no
``KB_API_TOKEN`` it therefore answers only requests that reached the server on a loopback
address (a local demo); any other request gets 403.
"""

from __future__ import annotations

import copy
import hmac
import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SECRET_QUERY_NAMES = ("signature", "msg_signature", "timestamp", "nonce", "echostr", "openid")
"""Query parameters that sign a WeChat request or name its customer: a log with them lets its
reader forge plaintext-mode messages."""
_SECRET_QUERY = re.compile(r"[?&](?:" + "|".join(SECRET_QUERY_NAMES) + r")=", re.IGNORECASE)


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (an address the server listens on) is a loopback address."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def check_api_key(request: Request, token: str) -> None:
    """Let a request to ``/api/ask`` through, or raise 401 (no or wrong key) or 403 (no key is
    configured and the request did not come in on a loopback address)."""
    if not token:
        server = request.scope.get("server")
        if not (server and is_loopback(str(server[0]))):
            raise HTTPException(403, "/api/ask needs KB_API_TOKEN when the server is not on loopback.")
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(401, "Missing or wrong API key.", headers={"WWW-Authenticate": "Bearer"})


def key_notice(token: str, host: str) -> str | None:
    """What ``kb serve`` says at start about the key of ``/api/ask`` (None: nothing to say)."""
    if token:
        return None
    if is_loopback(host):
        return (
            "/api/ask has no key (KB_API_TOKEN is not set): it answers anyone who can reach "
            f"{host}, for a local demo only. Set KB_API_TOKEN before putting a proxy in front."
        )
    return (
        f"/api/ask is off for requests from other machines: KB_API_TOKEN is not set and the server "
        f"listens on {host}; only requests that come in on a loopback address are answered."
    )


class BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes on one of ``paths`` gets 413, from its
    Content-Length when it declares one, else as soon as the bytes read pass the limit; the body
    is never read whole first."""

    def __init__(self, app: ASGIApp, limits: dict[str, int]) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limits.get(scope.get("path", "")) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _too_large(limit)(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            if len(body) > limit:
                await _too_large(limit)(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replay: list[Message] = [{"type": "http.request", "body": bytes(body), "more_body": False}]

        async def replayed() -> Message:
            return replay.pop() if replay else await receive()

        await self.app(scope, replayed, send)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"detail": f"The body is over {limit} bytes."}, status_code=413)


class RedactSignedQueries(logging.Filter):
    """Drops the query string of a logged path that carries a signature, timestamp, nonce,
    ``echostr`` or OpenID (uvicorn's access log passes the path as an argument)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def redact(text: str) -> str:
    """``text`` with the query string cut off when it holds a secret (``/wechat?…``)."""
    found = _SECRET_QUERY.search(text)
    if found is None:
        return text
    end = re.search(r"[\s\"']", text[found.start() :])
    rest = text[found.start() + end.start() :] if end else ""
    return text[: found.start()] + "?…" + rest


def serve_log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with :class:`RedactSignedQueries` on its loggers."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact"] = {"()": f"{__name__}.RedactSignedQueries"}
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        config["loggers"].setdefault(name, {})["filters"] = ["redact"]
    for handler in config["handlers"].values():
        handler["filters"] = ["redact"]
    return config
