"""Signed-in browsers: a random token in an HttpOnly, SameSite=Lax cookie (Secure over HTTPS,
also behind a proxy that says so in X-Forwarded-Proto), and a CSRF token per session that every
POST must carry. The store keeps a hash of the cookie's token, never the token."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from urllib.parse import parse_qs

from fastapi import Request, Response

from bots.store import Account, Accounts, DeskSession

COOKIE = "kb_desk"
PRE_COOKIE = "kb_desk_pre"
"""The sign-in form's own CSRF token (double submit): there is no session yet to hold one."""
LIFETIME = 12 * 3600
"""A working day: a session ends after it, signed out or not."""


def start(store: Accounts, account: Account, request: Request, response: Response, now: float | None = None) -> DeskSession:
    now = time.time() if now is None else now
    token = secrets.token_urlsafe(32)
    session = DeskSession(_digest(token), account.name, secrets.token_urlsafe(24), now, now + LIFETIME)
    store.add_session(session)
    set_cookie(request, response, COOKIE, token, LIFETIME)
    response.delete_cookie(PRE_COOKIE, path="/desk")
    return session


def current(store: Accounts, request: Request) -> DeskSession | None:
    token = request.cookies.get(COOKIE)
    return store.session(_digest(token), time.time()) if token else None


def end(store: Accounts, request: Request, response: Response) -> None:
    token = request.cookies.get(COOKIE)
    if token:
        store.drop_session(_digest(token))
    response.delete_cookie(COOKIE, path="/desk")


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/desk", httponly=True, samesite="lax", secure=is_https(request))


def is_https(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def same(expected: str, given: str | None) -> bool:
    return bool(expected) and given is not None and hmac.compare_digest(expected.encode(), given.encode())


async def form(request: Request) -> dict[str, str]:
    """A URL-encoded body (every form and fetch of the desk sends one), first value per field."""
    if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
        return {}
    body = (await request.body()).decode("utf-8", errors="replace")
    return {key: values[0] for key, values in parse_qs(body, keep_blank_values=True).items()}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
