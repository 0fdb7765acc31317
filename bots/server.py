"""``kb serve``: one ASGI application for everything that comes over HTTP.

- ``GET /healthz``: alive, which build is serving, and which worker process answered;
- ``POST /api/ask``: ``{"question": ...}`` → the answer (with ``user_id``: the whole engine, as a
  customer of the ``api`` channel only); Bearer key ``KB_API_TOKEN`` (:mod:`bots.guards`);
- the agent API under ``/api/agent`` (Bearer token from ``[agents] token`` / ``KB_AGENT_TOKEN``):
  list open tickets, read one, take, reply (sent through the customer's channel), close;
- the channels' webhooks, which mount themselves through the :class:`~bots.channels.ChannelHub`;
- the web desk for agents, editors and admins at ``/desk`` (:mod:`bots.console`).

The knowledge base is reloaded when a new build lands, between requests: a question under way
finishes on the build it started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from bots.channels import ChannelHub
from bots.channels.capacity import Lane, Saturated
from bots.channels.telegram import mount_telegram
from bots.channels.wechat import mount_wechat
from bots.console import mount_console
from bots.conversation import Engine
from bots.desk import TicketClosed, TicketNotFound
from bots.guards import BodyLimit, check_api_key
from bots.settings import Settings, load_settings
from kb.config import Config, load_config
from kb.vocabulary import OPEN_TICKET_STATES, Channel, TicketState
from retriever import render_answer

log = logging.getLogger("kb.server")

WORKER = f"{socket.gethostname()}:{os.getpid()}"
"""Which process answered (``/healthz``): behind a load balancer, every worker should show the same build."""


class AskRequest(BaseModel):
    question: str = Field(max_length=20_000)
    user_id: str | None = Field(default=None, max_length=200)
    """With a user id the message goes through the whole engine (handoff, orders, feedback)."""
    channel: Literal["api"] = "api"
    """Kept for old clients: the API speaks for its own customers only, never for another
    channel's (only a channel's adapter, after verifying a request, may)."""


class AgentAction(BaseModel):
    agent: str = Field(min_length=1, max_length=100)


class AgentReply(AgentAction):
    text: str = Field(min_length=1, max_length=4000)


def create_app(
    config: Config, engine: Engine | None = None, settings: Settings | None = None, reload_every: float = 2.0
) -> FastAPI:
    """The application. ``engine`` defaults to one over the configured knowledge base."""
    settings = settings or load_settings(config)
    engine = engine or Engine.from_config(config, settings=settings)
    hub = ChannelHub.for_engine(engine)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(engine.retriever.warm_up)
        loops = [
            lambda: _reload_loop(engine, reload_every),
            lambda: _escalation_loop(hub),
            lambda: _tidy_loop(engine),
            *hub.loops,
        ]
        tasks = [asyncio.create_task(loop()) for loop in loops]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for hook in hub.shutdown_hooks:
                await hook()

    app = FastAPI(title="Knowledge-base bot", lifespan=lifespan, docs_url="/docs")
    app.add_middleware(BodyLimit, limits={"/api/ask": settings.api.max_body_bytes})
    app.state.engine = engine
    app.state.config = config
    app.state.settings = settings
    app.state.hub = hub
    app.state.channels = hub.senders

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the input back and fails (500) when that input is not UTF-8.
        details = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in error.errors()]
        return JSONResponse({"detail": details}, status_code=422)

    def agent_token(authorization: str = Header(default="")) -> None:
        expected = settings.agents.token
        if not expected:
            raise HTTPException(503, "The agent API is off: set KB_AGENT_TOKEN (or [agents] token in a local config).")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
            raise HTTPException(401, "Missing or wrong agent token.", headers={"WWW-Authenticate": "Bearer"})

    # /api/ask's own worker threads and queue: a burst of questions is shed with 503, and never
    # holds up WeChat (its own lane) or the quick calls of other requests (the shared pool).
    asks = Lane(settings.capacity.ask_workers, settings.capacity.ask_queue)
    app.state.asks = asks

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        # On the event loop, not in a worker thread: it must answer while every worker is busy.
        kb = engine.retriever.kb
        return {"status": "ok", "build": kb.build_id, "records": len(kb.records), "worker": WORKER}

    def api_key(request: Request) -> None:
        check_api_key(request, settings.api.token)

    @app.post("/api/ask", dependencies=[Depends(api_key)])
    async def ask(body: AskRequest, request: Request) -> dict[str, Any]:
        try:
            if body.user_id is None:
                answer = await asks.run(engine.retriever.ask, body.question)
                return {**answer.to_dict(), "text": render_answer(answer)}
            turn = await asks.run(engine.handle, Channel.API, body.user_id, body.question)
        except Saturated:
            retry = str(settings.capacity.retry_after_seconds)
            raise HTTPException(503, "Busy: please try again shortly.", headers={"Retry-After": retry}) from None
        if turn.handed_off and turn.ticket is not None:
            await hub.notify("opened", turn.ticket)
        return {
            "replies": [{"kind": r.kind, "text": r.plain(), "entry_id": r.entry_id} for r in turn.replies],
            "silent": turn.silent,
            "handed_off": turn.handed_off,
            "ticket": turn.ticket.id if turn.ticket else None,
            "answer": turn.answer.to_dict() if turn.answer else None,
        }

    agents = Depends(agent_token)

    # Channels mount their webhooks here (each does nothing unless its section is configured).
    app.state.wechat = mount_wechat(app, config, hub)
    app.state.telegram = mount_telegram(app, config, hub)
    mount_console(app, hub, settings, config)

    @app.get("/api/agent/tickets", dependencies=[agents])
    def list_tickets(state: str = "open") -> list[dict[str, Any]]:
        states = {"open": OPEN_TICKET_STATES, "closed": (TicketState.CLOSED,), "all": tuple(TicketState)}.get(state)
        if states is None:
            raise HTTPException(400, "state is open, closed or all")
        return [_summary(t) for t in engine.desk.tickets(states)]

    @app.get("/api/agent/tickets/{ticket_id}", dependencies=[agents])
    def read_ticket(ticket_id: str) -> dict[str, Any]:
        return _ticket_call(engine.desk.ticket, ticket_id).to_dict()

    @app.post("/api/agent/tickets/{ticket_id}/take", dependencies=[agents])
    def take(ticket_id: str, body: AgentAction) -> dict[str, Any]:
        return _ticket_call(engine.desk.take, ticket_id, body.agent).to_dict()

    @app.post("/api/agent/tickets/{ticket_id}/reply", dependencies=[agents])
    async def reply(ticket_id: str, body: AgentReply, request: Request) -> dict[str, Any]:
        delivery = await run_in_threadpool(_ticket_call, engine.desk.reply, ticket_id, body.agent, body.text)
        sent = await hub.deliver(delivery)
        return {"ticket": delivery.ticket.to_dict(), "delivered": sent}

    @app.post("/api/agent/tickets/{ticket_id}/close", dependencies=[agents])
    async def close(ticket_id: str, body: AgentAction, request: Request) -> dict[str, Any]:
        delivery = await run_in_threadpool(_ticket_call, engine.desk.close, ticket_id, body.agent)
        sent = await hub.deliver(delivery)
        return {"ticket": engine.desk.ticket(ticket_id).to_dict(), "delivered": sent}

    return app


def app_from_environment() -> FastAPI:
    """The application of one of ``kb serve --workers N``'s processes: each worker loads the
    configuration named by ``KB_CONFIG`` and opens its own engine (and store connections)."""
    return create_app(load_config(os.environ.get("KB_CONFIG")))


def _ticket_call(function: Callable[..., Any], *args: Any) -> Any:
    try:
        return function(*args)
    except TicketNotFound as error:
        raise HTTPException(404, str(error)) from None
    except TicketClosed as error:
        raise HTTPException(409, str(error)) from None


def _summary(ticket: Any) -> dict[str, Any]:
    data = ticket.to_dict()
    data.pop("messages")
    return data


async def _reload_loop(engine: Engine, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            if await run_in_threadpool(engine.retriever.reload_if_changed):
                log.info("now serving build %s", engine.retriever.kb.build_id)
        except Exception:
            log.exception("could not load the new build; the previous one keeps serving")


async def _escalation_loop(hub: ChannelHub, every: float = 60.0) -> None:
    hours = hub.engine.settings.escalate_after_hours
    while True:
        try:
            for ticket in await run_in_threadpool(hub.engine.desk.escalate_overdue):
                log.warning("ticket %s escalated: untouched for %g hours", ticket.id, hours)
                await hub.notify("escalated", ticket)
        except Exception:
            log.exception("escalation check failed")
        await asyncio.sleep(every)


async def _tidy_loop(engine: Engine, every: float = 600.0) -> None:
    """Forget the shared answers that no longer serve, now and then (any worker may: it is idempotent)."""
    while True:
        await asyncio.sleep(every)
        try:
            forgotten = await run_in_threadpool(engine.forget_stale_answers)
            if forgotten:
                log.info("forgot %d shared answers of other builds or days", forgotten)
        except Exception:
            log.exception("could not forget stale shared answers")
