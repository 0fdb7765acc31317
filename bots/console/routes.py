"""The desk's pages and the few small endpoints its script calls, mounted on ``kb serve``'s app.

Every page checks the session and the account's role; every POST checks the session's CSRF
token. Agents' actions go through ``hub.engine.desk`` and out through ``hub.deliver``, exactly as
the agent API sends them.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from bots.channels import ChannelHub
from bots.console import accounts, editing, sessions
from bots.console.figures import service_figures
from bots.console.knowledge import search
from bots.console.orders import order_card
from bots.console.rows import queue_rows
from bots.console.svg import columns
from bots.console.text import NAMES, name_of, words
from bots.desk import TicketClosed, TicketNotFound
from bots.report.suggestions import SuggestionError, pending, reject
from bots.settings import Settings
from bots.store import Account, DeskSession, StateStore, Ticket
from ingest.suggestions import FrontMatterError
from kb.config import Config
from kb.vocabulary import DeskRole, TicketState

log = logging.getLogger("kb.desk")

HERE = Path(__file__).parent
HOME = {DeskRole.AGENT: "/desk/queue", DeskRole.EDITOR: "/desk/search", DeskRole.ADMIN: "/desk/users"}
PAGES = {
    "queue": (DeskRole.AGENT,),
    "search": (DeskRole.AGENT, DeskRole.EDITOR),
    "reports": (DeskRole.EDITOR,),
    "suggestions": (DeskRole.EDITOR,),
    "users": (DeskRole.ADMIN,),
}
"""Which roles open which part of the desk (least privilege: an admin keeps accounts, no more)."""
QUEUE_PAGE = 100
"""Queue rows per page: the most urgent hundred first; a page renders in a few milliseconds."""
DONE = ("taken", "sent", "not_pushed", "closed_done")
"""What a ticket page may say happened (after a take, reply or close)."""


class DeskHeaders:
    """The desk's security headers on every ``/desk`` response. A plain ASGI middleware: it only
    touches the response's start, so a client that hangs up mid-body elsewhere (a webhook) is
    still the webhook's quiet 400, not "No response returned" from a wrapping middleware."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/desk"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k.lower().encode(), v.encode()) for k, v in HEADERS.items() if k.lower().encode() not in present]
                # The page's server time, for the browser's developer tools and eval.bench_desk.
                timing = f"app;dur={(time.perf_counter() - started) * 1000:.1f}".encode()
                message = {**message, "headers": [*message.get("headers", []), *extra, (b"server-timing", timing)]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Refused(Exception):
    """The signed-in account's role may not do this (403), or the CSRF token is wrong (403)."""

    def __init__(self, viewer: Viewer | None, key: str = "refused") -> None:
        self.viewer, self.key = viewer, key


class SignInFirst(Exception):
    """No session: to the sign-in page."""


@dataclass
class Viewer:
    account: Account
    session: DeskSession

    @property
    def language(self) -> str:
        return self.account.language

    def may(self, page: str) -> bool:
        return self.account.role in PAGES[page]


def mount_console(app: FastAPI, hub: ChannelHub, settings: Settings, config: Config) -> None:
    """Serve the desk under ``/desk`` on ``app``; ``config`` says where the content is (editors'
    accepted suggestions are written there) and how many picks make a suggestion."""
    store: StateStore = hub.engine.store
    engine = hub.engine
    templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(), auto_reload=False)
    zone = settings.engine.zone
    templates.globals["clock"] = lambda at: datetime.fromtimestamp(at, zone).strftime("%m-%d %H:%M")

    def render(request: Request, name: str, viewer: Viewer | None, status: int = 200, **context: Any) -> HTMLResponse:
        language = viewer.language if viewer else _browser_language(request)
        html = templates.get_template(name).render(
            t=words(language),
            names=NAMES[language] if language in NAMES else NAMES["en"],
            lang=language,
            viewer=viewer,
            pages=[p for p in PAGES if viewer and viewer.may(p)],
            now=time.time(),
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def viewer_of(request: Request, page: str | None = None) -> Viewer:
        session = sessions.current(store, request)
        account = store.account(session.name) if session else None
        if session is None or account is None:
            raise SignInFirst()
        viewer = Viewer(account, session)
        if page is not None and not viewer.may(page):
            raise Refused(viewer)
        return viewer

    async def posted(request: Request, page: str) -> tuple[Viewer, dict[str, str]]:
        viewer = viewer_of(request, page)
        data = await sessions.form(request)
        if not sessions.same(viewer.session.csrf, data.get("csrf") or request.headers.get("x-csrf-token")):
            raise Refused(viewer, "expired")
        return viewer, data

    @app.exception_handler(SignInFirst)
    async def sign_in_first(request: Request, _: SignInFirst) -> Response:
        if request.url.path.startswith("/desk/api/") or request.method != "GET":
            return JSONResponse({"detail": "Sign in first."}, status_code=401)
        return RedirectResponse("/desk/sign-in", status_code=303)

    @app.exception_handler(Refused)
    async def refused(request: Request, error: Refused) -> Response:
        language = error.viewer.language if error.viewer else _browser_language(request)
        return render(request, "message.html", error.viewer, status=403, message=words(language)[error.key])

    app.add_middleware(DeskHeaders)

    app.mount("/desk/static", StaticFiles(directory=HERE / "static"), name="desk-static")

    # signing in and out

    @app.get("/desk", include_in_schema=False)
    def home(request: Request) -> Response:
        viewer = viewer_of(request)
        return RedirectResponse(HOME[DeskRole(viewer.account.role)], status_code=303)

    @app.get("/desk/sign-in", include_in_schema=False)
    def sign_in_page(request: Request) -> Response:
        return _sign_in_form(request)

    def _sign_in_form(request: Request, status: int = 200, message: str | None = None) -> Response:
        token = secrets.token_urlsafe(24)
        response = render(request, "sign_in.html", None, status=status, csrf=token, message=message)
        sessions.set_cookie(request, response, sessions.PRE_COOKIE, token, 3600)
        return response

    @app.post("/desk/sign-in", include_in_schema=False)
    async def sign_in(request: Request) -> Response:
        data = await sessions.form(request)
        t = words(_browser_language(request))
        if not sessions.same(request.cookies.get(sessions.PRE_COOKIE, ""), data.get("csrf")):
            return _sign_in_form(request, 403, t["expired"])
        result = await run_in_threadpool(accounts.sign_in, store, data.get("name", ""), data.get("password", ""))
        if result.account is None:
            log.warning("desk sign-in refused%s", " (locked)" if result.locked else "")
            return _sign_in_form(request, 401, t["locked"] if result.locked else t["wrong_password"])
        response = RedirectResponse(HOME[DeskRole(result.account.role)], status_code=303)
        sessions.start(store, result.account, request, response)
        return response

    @app.post("/desk/sign-out", include_in_schema=False)
    async def sign_out(request: Request) -> Response:
        await posted_any(request)
        response = RedirectResponse("/desk/sign-in", status_code=303)
        sessions.end(store, request, response)
        return response

    async def posted_any(request: Request) -> Viewer:
        viewer = viewer_of(request)
        data = await sessions.form(request)
        if not sessions.same(viewer.session.csrf, data.get("csrf") or request.headers.get("x-csrf-token")):
            raise Refused(viewer, "expired")
        return viewer

    # the queue

    def queue_page(page: int, language: str) -> tuple[Markup, int, int, str]:
        """(this page's rows, the page, how many pages, a version that changes when they do)."""
        total = engine.desk.count()
        pages = max((total + QUEUE_PAGE - 1) // QUEUE_PAGE, 1)
        page = min(max(page, 1), pages)
        tickets = engine.desk.tickets(limit=QUEUE_PAGE, offset=(page - 1) * QUEUE_PAGE)
        version = hashlib.sha1(
            repr([total, *((t.id, t.state, t.agent, t.priority, t.due_at, t.touched_at) for t in tickets)]).encode()
        ).hexdigest()
        names = NAMES[language] if language in NAMES else NAMES["en"]
        return queue_rows(tickets, words(language), names, time.time()), page, pages, version

    @app.get("/desk/queue", include_in_schema=False)
    def queue(request: Request, page: int = 1) -> Response:
        viewer = viewer_of(request, "queue")
        rows, page, pages, _ = queue_page(page, viewer.language)
        return render(request, "queue.html", viewer, rows=rows, page=page, page_count=pages, total=engine.desk.count())

    @app.get("/desk/queue/rows", include_in_schema=False)
    def queue_rows_fragment(request: Request, page: int = 1) -> Response:
        """The queue's rows for the page's polling; 204 when nothing changed since the version
        the page has (waiting times and countdowns run in the page), so that a quiet queue
        costs two small queries, not a render."""
        viewer = viewer_of(request, "queue")
        rows, _, _, version = queue_page(page, viewer.language)
        if request.headers.get("x-version") == version:
            return Response(status_code=204, headers={"X-Version": version})
        return HTMLResponse(rows, headers={"X-Version": version})

    # a ticket

    def ticket_or_404(ticket_id: str) -> Ticket:
        try:
            return engine.desk.ticket(ticket_id)
        except TicketNotFound:
            raise HTTPException(404, "No such ticket.") from None

    order_number = re.compile(settings.orders.number_pattern)

    def ticket_page(request: Request, viewer: Viewer, ticket_id: str, status: int = 200, **context: Any) -> Response:
        ticket = ticket_or_404(ticket_id)
        order = order_card(ticket, engine.orders, order_number)
        return render(request, "ticket.html", viewer, status=status, ticket=ticket, order=order, **context)

    @app.get("/desk/tickets/{ticket_id}", include_in_schema=False)
    def ticket(request: Request, ticket_id: str, done: str = "") -> Response:
        viewer = viewer_of(request, "queue")
        return ticket_page(request, viewer, ticket_id, done=done if done in DONE else "")

    @app.get("/desk/tickets/{ticket_id}/transcript", include_in_schema=False)
    def transcript(request: Request, ticket_id: str) -> Response:
        viewer = viewer_of(request, "queue")
        return render(request, "transcript.html", viewer, ticket=ticket_or_404(ticket_id))

    def after(ticket_id: str, done: str) -> Response:
        return RedirectResponse(f"/desk/tickets/{ticket_id}?done={done}", status_code=303)

    async def act(request: Request, ticket_id: str, action: str) -> Response:
        viewer, data = await posted(request, "queue")
        agent = viewer.account.name
        try:
            if action == "take":
                await run_in_threadpool(engine.desk.take, ticket_id, agent)
                return after(ticket_id, "taken")
            if action == "reply":
                text = data.get("text", "").strip()[:4000]
                if not text:
                    return after(ticket_id, "")
                delivery = await run_in_threadpool(engine.desk.reply, ticket_id, agent, text)
            else:
                delivery = await run_in_threadpool(engine.desk.close, ticket_id, agent)
        except TicketNotFound:
            raise HTTPException(404, "No such ticket.") from None
        except TicketClosed:
            return ticket_page(request, viewer, ticket_id, status=409, done="closed")
        try:
            sent = await hub.deliver(delivery)
        except HTTPException as error:  # a channel's refusal (WeChat: 48 hours since the customer wrote)
            draft = data.get("text", "")
            return ticket_page(request, viewer, ticket_id, status=error.status_code, refusal=str(error.detail), draft=draft)
        except Exception as error:
            log.exception("delivery of ticket %s failed", ticket_id)
            return ticket_page(request, viewer, ticket_id, status=502, refusal=type(error).__name__, draft=data.get("text", ""))
        if action == "close":
            return after(ticket_id, "closed_done")
        return after(ticket_id, "sent" if sent else "not_pushed")

    @app.post("/desk/tickets/{ticket_id}/take", include_in_schema=False)
    async def take(request: Request, ticket_id: str) -> Response:
        return await act(request, ticket_id, "take")

    @app.post("/desk/tickets/{ticket_id}/reply", include_in_schema=False)
    async def reply(request: Request, ticket_id: str) -> Response:
        return await act(request, ticket_id, "reply")

    @app.post("/desk/tickets/{ticket_id}/close", include_in_schema=False)
    async def close(request: Request, ticket_id: str) -> Response:
        return await act(request, ticket_id, "close")

    @app.post("/desk/api/entries", include_in_schema=False)
    async def entries(request: Request) -> Response:
        """The reply box's search: entries in the ticket's language, their steps ready to insert."""
        _, data = await posted(request, "queue")
        query = data.get("q", "").strip()[:500]
        language = data.get("language") if data.get("language") in ("zh", "en") else None
        if not query:
            return JSONResponse({"entries": []})
        _, found = await run_in_threadpool(search, engine.retriever, query, language)
        rows = [{"entry_id": f.entry_id, "question": f.question, "score": round(f.score, 3), "text": f.text()} for f in found]
        return JSONResponse({"entries": rows})

    # search

    @app.get("/desk/search", include_in_schema=False)
    def search_page(request: Request) -> Response:
        viewer = viewer_of(request, "search")
        return render(request, "search.html", viewer, query="", found=None)

    @app.post("/desk/search", include_in_schema=False)
    async def search_results(request: Request) -> Response:
        viewer, data = await posted(request, "search")
        query = data.get("q", "").strip()[:500]
        found = (await run_in_threadpool(search, engine.retriever, query))[1] if query else None
        return render(request, "search.html", viewer, query=query, found=found)

    # editors

    grouping: list[editing.Remembered | None] = []
    """The embedder that groups questions by meaning, loaded on the first reports page."""

    @app.get("/desk/reports", include_in_schema=False)
    def reports(request: Request, days: int = 14, channel: str = "") -> Response:
        viewer = viewer_of(request, "reports")
        days = min(max(days, 1), 92)
        now = time.time()
        since = (datetime.fromtimestamp(now, zone) - timedelta(days=days)).timestamp()
        questions, feedback = store.questions(since), store.feedback_since(since)
        figures = service_figures(
            questions,
            [t for t in store.tickets(tuple(TicketState)) if t.created_at >= since or (t.escalated_at or 0) >= since],
            feedback,
            zone,
            datetime.fromtimestamp(now, zone).date(),
            days,
            channel or None,
            responses=store.first_responses(since),
            now=now,
        )
        t, language = words(viewer.language), viewer.language
        resolved = figures.share(figures.resolved, figures.questions)
        response_series = {t["within_sla"]: list(figures.on_time), t["late"]: list(figures.late)}
        response_series[t["no_response"]] = list(figures.unanswered)
        charts = [
            (t["first_response"], columns(figures.days, response_series, False, t["first_response"])),
            (t["resolved_share"], columns(figures.days, {t["resolved_share"]: resolved}, True, t["resolved_share"])),
            (
                t["handoff_rate"],
                columns(
                    figures.days,
                    {name_of(language, r): figures.share(c, figures.questions) for r, c in figures.handoffs.items()},
                    True,
                    t["handoff_rate"],
                ),
            ),
            (t["escalations"], columns(figures.days, {t["escalations"]: list(figures.escalations)}, False, t["escalations"])),
            (
                t["solved_rate"],
                columns(
                    figures.days, {t["solved_rate"]: figures.share(figures.solved, figures.feedback)}, True, t["solved_rate"]
                ),
            ),
        ]
        channels = sorted(set(figures.channels) | ({channel} if channel else set()))
        if not grouping:
            grouping.append(editing.grouping_embedder(engine.retriever.config.embedders))
        records = engine.retriever.kb.records
        return render(
            request, "reports.html", viewer, figures=figures, charts=charts, days=days, channel=channel, channels=channels,
            groups=editing.unanswered_groups(questions, grouping[0], channel or None),
            not_solved=editing.not_solved(feedback, records, language, channel or None),
        )  # fmt: skip

    def suggestions_page(request: Request, viewer: Viewer, status: int = 200, **context: Any) -> Response:
        records = engine.retriever.kb.records
        found, conflicts = pending(store, records, config.learning.min_picks)
        shown = editing.conflicts_shown(conflicts)
        ids = {s.entry_id for s in found} | {e for c in shown for e in c.picks}
        return render(
            request, "suggestions.html", viewer, status=status, suggestions=found, conflicts=shown,
            questions=editing.entry_questions(records, ids, viewer.language), **context,
        )  # fmt: skip

    @app.get("/desk/suggestions", include_in_schema=False)
    def suggestions(request: Request, done: str = "", file: str = "") -> Response:
        viewer = viewer_of(request, "suggestions")
        content = Path(config.content_dir).resolve()
        # the file named after an accept, shown only when it is one of the content's files
        changed = file if file and (content.parent / file).resolve().is_relative_to(content) else ""
        return suggestions_page(request, viewer, done=done if done in ("accepted", "rejected") else "", changed=changed)

    @app.post("/desk/suggestions/{suggestion_id}/{decision}", include_in_schema=False)
    async def decide(request: Request, suggestion_id: str, decision: str) -> Response:
        viewer, _ = await posted(request, "suggestions")
        records = engine.retriever.kb.records
        try:
            if decision == "accept":
                suggestion, path = await run_in_threadpool(
                    editing.accept_suggestion, store, records, suggestion_id, Path(config.content_dir)
                )
                log.info("desk: %s accepted suggestion %s into %s", viewer.account.name, suggestion.id, path)
                return RedirectResponse(f"/desk/suggestions?done=accepted&file={quote(str(path))}", status_code=303)
            if decision == "reject":
                await run_in_threadpool(reject, store, records, suggestion_id)
                return RedirectResponse("/desk/suggestions?done=rejected", status_code=303)
        except (SuggestionError, FrontMatterError) as error:
            return suggestions_page(request, viewer, status=409, problem=str(error), done="", changed="")
        raise HTTPException(404, "accept or reject")

    # admins

    @app.get("/desk/users", include_in_schema=False)
    def users(request: Request, saved: int = 0) -> Response:
        viewer = viewer_of(request, "users")
        return render(request, "users.html", viewer, accounts=store.accounts(), saved=bool(saved), problem=None)

    @app.post("/desk/users", include_in_schema=False)
    async def add_account(request: Request) -> Response:
        viewer, data = await posted(request, "users")
        try:
            await run_in_threadpool(
                accounts.add_user, store, data.get("name", ""), data.get("password", ""),
                data.get("role", ""), data.get("language", "zh"),
            )  # fmt: skip
        except accounts.AccountError as error:
            return render(request, "users.html", viewer, status=400, accounts=store.accounts(), saved=False, problem=str(error))
        return RedirectResponse("/desk/users?saved=1", status_code=303)

    @app.post("/desk/users/{name}/unlock", include_in_schema=False)
    async def unlock(request: Request, name: str) -> Response:
        await posted(request, "users")
        accounts.unlock(store, name)
        return RedirectResponse("/desk/users?saved=1", status_code=303)


def _browser_language(request: Request) -> str:
    """Before sign-in: the browser's preference between Chinese and English."""
    preferred = request.headers.get("accept-language", "").lower()
    return "zh" if preferred.startswith("zh") or (preferred and "zh" in preferred and "en" not in preferred) else "en"
