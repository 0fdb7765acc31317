"""``kb serve``: one ASGI application for everything that comes over HTTP.

- ``GET /healthz``: alive, and which build is serving;
- ``POST /api/ask``: ``{"question": ...}`` → the answer (with ``user_id``: the whole engine);
- the agent API under ``/api/agent`` (Bearer token from ``[agents] token`` / ``KB_AGENT_TOKEN``):
  list open tickets, read one, take, reply (sent through the customer's channel), close;
- the channels' webhooks, which mount themselves with :func:`register_channel`.

The knowledge base is reloaded when a new build lands, between requests: a question under way
finishes on the build it started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from bots.engine import Engine, TicketError
from bots.reply import Delivery, Reply
from bots.settings import Settings, load_settings
from bots.telegram import mount_telegram
from bots.wechat import mount_wechat
from kb.config import Config
from retriever import render_answer

log = logging.getLogger("kb.server")

ChannelSender = Callable[[str, list[Reply]], Awaitable[None]]
"""Sends replies to a customer of one channel: ``await send(user_id, replies)``."""


class AskRequest(BaseModel):
    question: str = Field(max_length=20_000)
    user_id: str | None = Field(default=None, max_length=200)
    """With a user id the message goes through the whole engine (handoff, orders, feedback)."""
    channel: str = Field(default="api", max_length=40)


class AgentAction(BaseModel):
    agent: str = Field(min_length=1, max_length=100)


class AgentReply(AgentAction):
    text: str = Field(min_length=1, max_length=4000)


def register_channel(app: FastAPI, channel: str, sender: ChannelSender) -> None:
    """Agents' replies to ``channel``'s customers go out through ``sender``."""
    app.state.channels[channel] = sender


async def deliver(app: FastAPI, delivery: Delivery | None) -> bool:
    """Send a delivery through its channel. False when the channel cannot push messages."""
    if delivery is None or not delivery.replies:
        return False
    sender = app.state.channels.get(delivery.channel)
    if sender is None:
        return False
    await sender(delivery.user_id, delivery.replies)
    return True


def create_app(
    config: Config, engine: Engine | None = None, settings: Settings | None = None, reload_every: float = 2.0
) -> FastAPI:
    """The application. ``engine`` defaults to one over the configured knowledge base."""
    settings = settings or load_settings(config)
    engine = engine or Engine.from_config(config, settings=settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(engine.retriever.warm_up)
        tasks = [asyncio.create_task(_reload_loop(engine, reload_every)), asyncio.create_task(_escalation_loop(app))]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for hook in app.state.shutdown_hooks:
                await hook()

    app = FastAPI(title="Knowledge-base bot", lifespan=lifespan, docs_url="/docs")
    app.state.engine = engine
    app.state.config = config
    app.state.settings = settings
    app.state.channels = {}
    app.state.shutdown_hooks = []
    app.state.ticket_listeners = []
    """``async def listener(event, ticket)``: "opened" or "escalated" tickets (e.g. post to agents)."""

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

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        kb = engine.retriever.kb
        return {"status": "ok", "build": kb.build_id, "records": len(kb.records)}

    @app.post("/api/ask")
    async def ask(body: AskRequest, request: Request) -> dict[str, Any]:
        if body.user_id is None:
            answer = await run_in_threadpool(engine.retriever.ask, body.question)
            return {**answer.to_dict(), "text": render_answer(answer)}
        turn = await run_in_threadpool(engine.handle, body.channel, body.user_id, body.question)
        if turn.handed_off and turn.ticket is not None:
            await notify(request.app, "opened", turn.ticket)
        return {
            "replies": [{"kind": r.kind, "text": r.plain(), "entry_id": r.entry_id} for r in turn.replies],
            "silent": turn.silent,
            "handed_off": turn.handed_off,
            "ticket": turn.ticket.id if turn.ticket else None,
            "answer": turn.answer.to_dict() if turn.answer else None,
        }

    agents = Depends(agent_token)

    # Channels mount their webhooks here (each does nothing unless its section is configured).
    mount_wechat(app, config, engine)
    mount_telegram(app, config, engine)

    @app.get("/api/agent/tickets", dependencies=[agents])
    def list_tickets(state: str = "open") -> list[dict[str, Any]]:
        states = {"open": ("waiting", "human"), "closed": ("closed",), "all": ("waiting", "human", "closed")}.get(state)
        if states is None:
            raise HTTPException(400, "state is open, closed or all")
        return [_summary(t) for t in engine.tickets(states)]

    @app.get("/api/agent/tickets/{ticket_id}", dependencies=[agents])
    def read_ticket(ticket_id: str) -> dict[str, Any]:
        return _ticket_call(engine.ticket, ticket_id).to_dict()

    @app.post("/api/agent/tickets/{ticket_id}/take", dependencies=[agents])
    def take(ticket_id: str, body: AgentAction) -> dict[str, Any]:
        return _ticket_call(engine.take, ticket_id, body.agent).to_dict()

    @app.post("/api/agent/tickets/{ticket_id}/reply", dependencies=[agents])
    async def reply(ticket_id: str, body: AgentReply, request: Request) -> dict[str, Any]:
        delivery = await run_in_threadpool(_ticket_call, engine.agent_reply, ticket_id, body.agent, body.text)
        sent = await deliver(request.app, delivery)
        return {"ticket": delivery.ticket.to_dict(), "delivered": sent}

    @app.post("/api/agent/tickets/{ticket_id}/close", dependencies=[agents])
    async def close(ticket_id: str, body: AgentAction, request: Request) -> dict[str, Any]:
        delivery = await run_in_threadpool(_ticket_call, engine.close, ticket_id, body.agent)
        sent = await deliver(request.app, delivery)
        return {"ticket": engine.ticket(ticket_id).to_dict(), "delivered": sent}

    return app


def _ticket_call(function: Callable[..., Any], *args: Any) -> Any:
    try:
        return function(*args)
    except TicketError as error:
        raise HTTPException(404 if "no ticket" in str(error) else 409, str(error)) from None


def _summary(ticket: Any) -> dict[str, Any]:
    data = ticket.to_dict()
    data.pop("messages")
    return data


async def notify(app: FastAPI, event: str, ticket: Any) -> None:
    """Tell the ticket listeners (a failing listener is logged, never fatal)."""
    for listener in app.state.ticket_listeners:
        try:
            await listener(event, ticket)
        except Exception:
            log.exception("ticket listener failed on %s %s", event, ticket.id)


async def _reload_loop(engine: Engine, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            if await run_in_threadpool(engine.retriever.reload_if_changed):
                log.info("now serving build %s", engine.retriever.kb.build_id)
        except Exception:
            log.exception("could not load the new build; the previous one keeps serving")


async def _escalation_loop(app: FastAPI, every: float = 60.0) -> None:
    while True:
        try:
            for ticket in await run_in_threadpool(app.state.engine.escalate_overdue):
                log.warning("ticket %s escalated: untouched for 24 hours", ticket.id)
                await notify(app, "escalated", ticket)
        except Exception:
            log.exception("escalation check failed")
        await asyncio.sleep(every)
