"""``POST /telegram/webhook`` in ``kb serve``.

Telegram signs nothing; what proves a request comes from Telegram is the secret it was given at
``setWebhook`` and sends back in ``X-Telegram-Bot-Api-Secret-Token``. A request without it, or with
another one, gets 403 and is not read. A body that is not an update, or an update whose fields do
not have Telegram's shapes (:mod:`~bots.channels.telegram.shape`), gets 400; an update of a kind
the bot does not handle gets 200 and is dropped (Telegram would otherwise resend it). Nothing
that arrives here can make the route answer 500.

An accepted update is queued and answered with 200 at once; PTB's workers process the queue
concurrently (:class:`~bots.channels.telegram.flow.PerChatUpdateProcessor`), so a slow answer never makes
Telegram wait, time out and resend.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections import OrderedDict
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.requests import ClientDisconnect
from telegram import Update
from telegram.error import TelegramError

from bots.channels.hub import ChannelHub
from bots.channels.telegram.bot import TelegramBot
from bots.channels.telegram.settings import ALLOWED_UPDATES, CHANNEL, WEBHOOK_PATH, TelegramSettings, load_telegram_settings
from bots.channels.telegram.shape import malformed
from kb.config import Config

log = logging.getLogger("kb.telegram")

MAX_BODY_BYTES = 1_000_000
"""Updates are a few kilobytes; anything this large is not one."""
SEEN_UPDATES = 2048
"""Update ids remembered to drop Telegram's resends of an update already queued."""


class TelegramWebhook:
    """The route: checks the secret, reads the update, queues it."""

    def __init__(self, bot: TelegramBot, settings: TelegramSettings) -> None:
        self.bot = bot
        self.secret = settings.webhook_secret.encode()
        self._seen: OrderedDict[int, None] = OrderedDict()

    async def receive(self, request: Request) -> Response:
        given = request.headers.get("x-telegram-bot-api-secret-token", "")
        if not self.secret or not hmac.compare_digest(given.encode(), self.secret):
            return Response(status_code=403)
        try:
            return await self._receive(request)
        except Exception:  # never a 500: Telegram would resend the same update again and again
            log.exception("Telegram webhook: an update could not be queued")
            return Response(status_code=200)

    async def _receive(self, request: Request) -> Response:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return Response("update too large", status_code=413)
        try:
            body = await request.body()
        except ClientDisconnect:  # hung up before the whole body came: nothing to queue or log
            return Response("incomplete body", status_code=400)
        if len(body) > MAX_BODY_BYTES:
            return Response("update too large", status_code=413)
        try:
            data: Any = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return Response("not JSON", status_code=400)
        if not isinstance(data, dict) or type(data.get("update_id")) is not int:
            return Response("not a Telegram update", status_code=400)
        if not any(kind in data for kind in ALLOWED_UPDATES):
            return Response(status_code=200)  # another kind of update: acknowledged, ignored
        problem = malformed(data)
        if problem is not None:
            log.info("Telegram webhook: refused update %s: %s", data["update_id"], problem)
            return Response("malformed update", status_code=400)
        try:
            update = Update.de_json(data, self.bot.application.bot)
        except Exception:
            return Response("malformed update", status_code=400)
        if update.update_id in self._seen:
            return Response(status_code=200)
        try:
            await self.bot.ready()
        except TelegramError as error:  # Telegram unreachable (getMe): let it resend later
            log.error("Telegram webhook: the bot could not start: %s", error)
            return Response(status_code=503, headers={"Retry-After": "10"})
        self._seen[update.update_id] = None
        while len(self._seen) > SEEN_UPDATES:
            self._seen.popitem(last=False)
        await self.bot.application.update_queue.put(update)
        return Response(status_code=200)


def mount_telegram(app: FastAPI, config: Config, hub: ChannelHub) -> TelegramBot | None:
    """Add the webhook to ``app`` when a bot token is configured (``[telegram] token`` or
    ``TELEGRAM_BOT_TOKEN``); without one, nothing. Agents' replies reach Telegram customers through
    the sender it registers with the hub; Telegram tickets are posted to the agents' group by the
    ticket listener the bot adds. Returns the bot (for tests)."""
    settings = load_telegram_settings(config)
    if not settings.enabled:
        return None
    if not settings.webhook_secret:
        log.warning("Telegram: no webhook secret (TELEGRAM_WEBHOOK_SECRET), so %s refuses every request", WEBHOOK_PATH)
    bot = TelegramBot(hub, settings)
    webhook = TelegramWebhook(bot, settings)
    app.add_api_route(WEBHOOK_PATH, webhook.receive, methods=["POST"], include_in_schema=False)
    hub.register_sender(CHANNEL, bot.send)
    hub.on_shutdown(bot.stop)
    return bot
