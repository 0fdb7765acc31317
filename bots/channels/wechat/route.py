"""The WeChat Official Account webhook in ``kb serve``: ``GET`` and ``POST`` on ``[wechat] path``.

WeChat gives a passive reply 5 seconds and then retries. Each message is claimed once
(:mod:`bots.channels.wechat.dedup`), answered by the engine in a worker thread within
``reply_budget_seconds``, and otherwise answered ``success`` at once and sent afterwards through
the customer-service message API, exactly one time. A handoff tells the customer what happens
next through that API, then replies ``transfer_customer_service`` so that WeChat hands the
customer to its agent system; a handoff decided after the budget cannot transfer that message,
so the customer is told to write again (their next message is transferred). Agents' replies
from the agent API go out through that API too. The webhook's work runs in worker threads of its
own (:mod:`bots.channels.capacity`), so that a burst on ``/api/ask`` cannot make it late.

Every request ends in 200 (a reply, or ``success``), 400 (unreadable, malformed or too large) or
403 (not signed with our token, a stale or future timestamp, or a nonce another message used:
then nothing is processed); never 500.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Coroutine
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from wechatpy.messages import BaseMessage

from bots.channels.capacity import Lane
from bots.channels.hub import ChannelHub
from bots.channels.wechat import dedup, replay
from bots.channels.wechat.client import CustomerServiceClient, make_client
from bots.channels.wechat.dispatch import Claimed, Outcome, dispatch, outcome_of
from bots.channels.wechat.envelope import (
    BadRequest,
    Forbidden,
    Inbound,
    check_handshake,
    open_request,
    seal,
    text_reply,
    transfer_reply,
)
from bots.channels.wechat.format import shorten, split
from bots.channels.wechat.sessions import release_idle
from bots.channels.wechat.settings import CHANNEL, WeChatSettings, load_wechat_settings
from bots.conversation import Engine
from bots.replies.messages import say
from bots.replies.reply import Reply, Turn
from bots.store import Claims
from kb.config import Config

log = logging.getLogger("kb.wechat")

SUCCESS = "success"
REPLY_MARGIN = 0.2
"""Seconds of the budget kept for sealing and sending the reply once the engine is done."""
QUICK_WORKERS = 8
"""Worker threads for the webhook's quick store calls (claims, recorded replies)."""
SEND_WORKERS = 8
"""Worker threads for calls to the customer-service API."""


class WeChatWebhook:
    """The webhook's state: settings, the engine, the customer-service client, and the
    background sends still under way (kept so that a shutdown waits for them)."""

    def __init__(
        self,
        settings: WeChatSettings,
        hub: ChannelHub,
        client: CustomerServiceClient | None,
    ) -> None:
        self.settings = settings
        self.engine = hub.engine
        self.claims = hub.claims
        self.values = hub.values
        # Who holds this worker's claims: a process that dies leaves them to be taken over.
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.client = client
        self.notify = hub.notify
        self.tasks: set[asyncio.Task[Any]] = set()
        # WeChat's own worker threads, apart from the shared pool and from /api/ask's: a burst
        # elsewhere must not make it miss its 5 seconds. Engine work has a lane of its own, so
        # that a queue of slow answers does not hold up claims and replies to retries either.
        self.answers = Lane(settings.max_concurrent_answers)
        self.quick = Lane(QUICK_WORKERS)
        self.sends = Lane(SEND_WORKERS)

    # requests

    async def handshake(self, request: Request) -> Response:
        """Server verification: ``echostr`` back when the request is signed with our token."""
        try:
            echostr = check_handshake(self.settings, dict(request.query_params))
        except Forbidden:
            return Response(status_code=403)
        except BadRequest:
            return Response(status_code=400)
        return Response(echostr, media_type="text/plain")

    async def receive(self, request: Request) -> Response:
        """A message or event: the passive reply, within the budget."""
        budget = self.settings.reply_budget_seconds
        # The reply must be on its way by the end of the budget: keep a little for writing it.
        deadline = time.monotonic() + budget - min(REPLY_MARGIN, budget / 10)
        try:
            body = await self._body(request)
            inbound = open_request(self.settings, dict(request.query_params), body)
        except Forbidden:
            return Response(status_code=403)
        except BadRequest as error:
            log.info("refused a WeChat request: %s", error)
            return Response(status_code=400)
        except Exception:
            log.exception("could not read a WeChat request")
            return Response(status_code=400)
        accepted, first = await anyio.to_thread.run_sync(
            replay.claim, self.claims, inbound, self.holder, limiter=self.quick.limiter
        )
        if not accepted:
            log.info("refused a WeChat request: its timestamp and nonce were used before by another message")
            return Response(status_code=403)
        try:
            xml = await self._reply(inbound, deadline, first_delivery=first)
            body_text, media_type = seal(self.settings, inbound, xml)
        except Exception:
            log.exception("WeChat message %s not answered", inbound.data.get("MsgId"))
            body_text, media_type = SUCCESS, "text/plain"
        return Response(body_text, media_type=media_type)

    async def _body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        length = request.headers.get("content-length", "")
        if length and (not length.isdigit() or int(length) > limit):
            raise BadRequest("body too large")
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise BadRequest("body too large")
        except ClientDisconnect:
            # Hung up before the whole body came: nothing to answer, nothing to log as a failure.
            raise BadRequest("the client hung up before the body was complete") from None
        return bytes(body)

    async def _reply(self, inbound: Inbound, deadline: float, first_delivery: bool) -> str:
        """The reply (plaintext XML or ``success``), given once per message and then repeated;
        ``first_delivery``: claimed by this worker (else a retry).

        Answering is a job that outlives the request when it must: at the deadline WeChat gets
        ``success``, and the answer goes out through the API when it is ready."""
        key = dedup.message_key(inbound.data)
        job = self.spawn(self._work(inbound.message, key, deadline, first_delivery))
        try:
            first, outcome = await asyncio.wait_for(asyncio.shield(job), timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            log.warning("WeChat message from %s not answered within the budget", _short(inbound.message.source))
            self.spawn(self._late(key, inbound.message.source, job))
            return SUCCESS
        if not first or outcome is None:
            return await dedup.wait_for_reply(self.claims, key, deadline, self.quick.limiter) or SUCCESS
        xml = await self._passive(inbound, outcome, deadline)
        if _plain_reply(inbound.message, outcome) is None:  # a plain reply was recorded with the answer
            # Recorded for retries after the response, not before it: the deadline is the response's.
            self.spawn(dedup.record_reply(self.claims, key, xml, self.quick.limiter))
        return xml

    async def _work(self, message: BaseMessage, key: str, deadline: float, first_delivery: bool) -> tuple[bool, Outcome | None]:
        """(answered here?, what to answer): a retry takes the message over from a worker that
        died holding it, or waits for the reply; then the engine answers it."""
        if not first_delivery:
            limiter = self.quick.limiter
            if not await dedup.take_over_if_dead(self.claims, self.values, key, self.holder, deadline, limiter):
                return False, None
            log.warning("WeChat message taken over from a worker that stopped while answering it")
        timeout = self.settings.session_timeout_minutes
        outcome = await self.answers.run(_answer_once, self.engine, self.claims, key, message, timeout, deadline)
        if outcome.opened is not None:
            self.spawn(self.notify("opened", outcome.opened))
        return True, outcome

    async def _passive(self, inbound: Inbound, outcome: Outcome, deadline: float) -> str:
        """The passive reply for an outcome that came in time."""
        message, user = inbound.message, inbound.message.source
        if outcome.transfer:
            if outcome.notices and self.client is None:
                # No way to say it first and transfer: say it; the next message is transferred.
                return text_reply(message, shorten("\n\n".join(outcome.notices), outcome.language))
            if outcome.notices:
                # Tell the customer first (within the budget), then hand over.
                sending = self.spawn(self._push(user, outcome.notices))
                await asyncio.wait({sending}, timeout=max(0.0, deadline - time.monotonic()))
            return transfer_reply(message)
        if not outcome.text:
            return SUCCESS
        plain = _plain_reply(message, outcome)
        if plain is not None:
            return plain
        pieces = split(outcome.text)
        if self.client is not None:
            # Too long for one message: all of it through the API, in order.
            self.spawn(self._push(user, pieces))
            return SUCCESS
        return text_reply(message, shorten(outcome.text, outcome.language))

    # sending through the customer-service API

    async def _late(self, key: str, user: str, job: asyncio.Task[tuple[bool, Outcome | None]]) -> None:
        """The answer that missed the budget, sent once it is ready (WeChat got ``success``)."""
        try:
            first, outcome = await job
        except Exception:
            log.exception("a late WeChat message failed")
            return
        if not first or outcome is None:
            return  # a retry: the first delivery answers
        await dedup.record_reply(self.claims, key, SUCCESS, self.quick.limiter)
        replies: list[Reply] = []
        texts = outcome.notices if outcome.transfer else ([outcome.text] if outcome.text else [])
        if outcome.transfer:
            # WeChat got ``success``, not ``transfer_customer_service``: this message never
            # reached its agent system. The ticket stays open, so the customer's next message is
            # transferred; say so, so that they write one.
            texts = [*texts, say(outcome.language, "wechat_late_transfer")]
        elif outcome.replies:
            # Sent as replies, not as their text: a menu goes out clickable.
            replies, texts = outcome.replies, []
        if not (texts or replies):
            return
        if self.client is None:
            log.warning("a late answer to %s is dropped: set app_id and app_secret to send it", _short(user))
            return
        await self._push(user, texts, replies)

    async def _push(self, user: str, texts: list[str], replies: list[Reply] | None = None) -> None:
        """Send replies, then texts, through the customer-service API; a failure is logged, never raised."""
        assert self.client is not None
        try:
            await self.sends.run(self.client.send_replies, user, replies or [], texts)
        except Exception:
            log.exception("customer-service message to %s failed", _short(user))

    async def send(self, user_id: str, replies: list[Reply]) -> None:
        """The channel's sender for agents' replies (see :meth:`ChannelHub.register_sender`)."""
        assert self.client is not None
        try:
            await self.sends.run(self.client.send_replies, user_id, replies)
        except Exception as error:
            # The agent must know the customer did not get it (e.g. 48 hours since the last message).
            raise HTTPException(502, f"WeChat did not accept the message: {error}") from None

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # housekeeping

    async def housekeeping(self) -> None:
        """Close tickets whose WeChat session has ended on its own; forget old dedup records."""
        settings = self.settings
        while True:
            try:
                closed = await run_in_threadpool(release_idle, self.engine, settings.session_timeout_minutes)
                if closed:
                    log.info("WeChat sessions released, tickets closed: %s", ", ".join(closed))
                await run_in_threadpool(self.claims.forget_claims, time.time() - settings.keep_dedup_hours * 3600)
            except Exception:
                log.exception("WeChat housekeeping failed")
            await asyncio.sleep(settings.session_check_seconds)

    async def heartbeat(self) -> None:
        """This worker is alive: its claims are not taken over by another worker's retries."""
        while True:
            try:
                await dedup.heartbeat(self.values, self.holder)
            except Exception:
                log.exception("WeChat heartbeat failed")
            await asyncio.sleep(dedup.HEARTBEAT_SECONDS)

    async def drain(self, timeout: float = 10.0) -> None:
        """Let late answers still under way go out before the server stops."""
        pending = [t for t in self.tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)


def mount_wechat(app: FastAPI, config: Config, hub: ChannelHub) -> WeChatWebhook | None:
    """Add the WeChat webhook to ``app`` when ``[wechat]`` (or ``WECHAT_TOKEN``) configures a
    token; without one, nothing. Returns the webhook (tests and benchmarks look inside)."""
    settings = load_wechat_settings(config)
    if not settings.enabled:
        return None
    client = make_client(settings, hub.values)
    webhook = WeChatWebhook(settings, hub, client)
    app.add_api_route(settings.path, webhook.handshake, methods=["GET"], include_in_schema=False)
    app.add_api_route(settings.path, webhook.receive, methods=["POST"], include_in_schema=False)
    if client is not None:
        hub.register_sender(CHANNEL, webhook.send)
    else:
        log.warning("WeChat: no app_id/app_secret, so late answers and agents' replies cannot be sent")
    hub.on_shutdown(webhook.drain)
    hub.run_alongside(webhook.housekeeping)
    hub.run_alongside(webhook.heartbeat)
    return webhook


def _plain_reply(message: BaseMessage, outcome: Outcome) -> str | None:
    """The passive reply when it is one text message (most answers); None when it is more."""
    if outcome.transfer or not outcome.text:
        return None
    pieces = split(outcome.text)
    return text_reply(message, pieces[0] if pieces else outcome.text) if len(pieces) <= 1 else None


def _answer_once(
    engine: Engine, claims: Claims, key: str, message: BaseMessage, session_timeout_minutes: float, deadline: float
) -> Outcome:
    """The engine's answer to a claimed message and, when it is one text message in time, that
    reply recorded for retries. A text message's reply is written with its turn, in one write
    (:meth:`Engine.handle`): a worker killed before it leaves nothing (a retry takes the message
    over and answers it); after it, the retry repeats the recorded reply. Either way the message
    is answered once. Other messages' replies (events, images) are recorded after them."""
    recorded = False

    def claimed(turn: Turn) -> tuple[str, str] | None:
        nonlocal recorded
        language = turn.replies[0].language if turn.replies else "zh"
        plain = _plain_reply(message, outcome_of(turn, language))
        recorded = plain is not None and time.monotonic() < deadline
        return (key, plain) if recorded and plain is not None else None

    outcome = _dispatch_safely(engine, message, session_timeout_minutes, claimed)
    plain = _plain_reply(message, outcome)
    if not recorded and plain is not None and time.monotonic() < deadline:
        claims.set_claimed_reply(key, plain)
    return outcome


def _dispatch_safely(engine: Engine, message: BaseMessage, session_timeout_minutes: float, claimed: Claimed) -> Outcome:
    """:func:`dispatch`, or an apology when the engine fails (logged): the customer hears back."""
    try:
        return dispatch(engine, message, session_timeout_minutes, claimed)
    except Exception:
        log.exception("the engine failed on a WeChat message")
        try:
            language = engine.conversation(CHANNEL, message.source).language
        except Exception:
            language = "zh"
        return Outcome(text=say(language, "wechat_busy"), language=language)


def _short(user: str) -> str:
    """An OpenID shortened for logs."""
    return f"{user[:6]}…" if len(user) > 8 else user
