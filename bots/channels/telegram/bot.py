"""The python-telegram-bot application over the engine, shared by the webhook and long polling.

The engine is synchronous and CPU-bound, so every call into it runs in a worker thread
(``asyncio.to_thread``): the event loop keeps taking updates and sending replies while one
customer's answer is being computed or an order system is slow.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from collections.abc import Callable

from telegram import InlineKeyboardMarkup, LinkPreviewOptions, Message
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden
from telegram.ext import Application, ApplicationBuilder

from bots.channels.hub import ChannelHub, TicketListener
from bots.channels.telegram.agents import AgentsDesk
from bots.channels.telegram.flow import FloodControl, PerChatUpdateProcessor
from bots.channels.telegram.format import render
from bots.channels.telegram.keyboards import keyboard_for
from bots.channels.telegram.settings import CHANNEL, TelegramSettings
from bots.replies.reply import Delivery, Reply, Turn

log = logging.getLogger("kb.telegram")

KeyboardFor = Callable[[Reply], InlineKeyboardMarkup | None]
_TAG = re.compile(r"</?[a-z]+>")


class TelegramBot:
    """The engine on Telegram: customers in private chats, agents in their group.

    Tickets opened here are announced through the hub (:meth:`ChannelHub.notify`), so that every
    ticket listener (this bot's agents' group among them) hears of Telegram's tickets as of any
    other channel's. ``polling`` keeps PTB's updater (long polling); the webhook feeds updates
    itself.
    """

    def __init__(self, hub: ChannelHub, settings: TelegramSettings, polling: bool = False) -> None:
        from bots.channels.telegram.handlers import install_handlers

        self.engine = hub.engine
        self.settings = settings
        builder = (
            ApplicationBuilder()
            .token(settings.token)
            .base_url(settings.base_url)
            .concurrent_updates(PerChatUpdateProcessor(settings.max_concurrent_updates))
            .rate_limiter(FloodControl(settings.flood_retries, settings.flood_max_wait))
        )
        if not polling:
            builder = builder.updater(None)
        self.application: Application = builder.build()
        self.desk = AgentsDesk(hub, settings, self.application.bot, self.ready)
        hub.add_listener(self.desk.on_ticket)
        self.on_ticket: TicketListener = hub.notify
        self._starting = asyncio.Lock()
        install_handlers(self)

    # life cycle

    async def ready(self) -> None:
        """Start the application on first use (``getMe``, then the update workers). Lazily, so
        that ``kb serve`` starts and answers its other routes even when Telegram is unreachable."""
        if self.application.running:
            return
        async with self._starting:
            if not self.application.running:
                await self.application.initialize()
                await self.application.start()

    async def stop(self) -> None:
        """Finish the updates under way, then close the HTTP client."""
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()

    # sending

    async def send(self, user_id: str, replies: list[Reply]) -> None:
        """The channel's sender (agents' replies from the agent API, the end of a session).
        A customer who blocked the bot is logged, not an error: there is nobody to tell."""
        await self.ready()
        try:
            await self.send_replies(int(user_id), replies)
        except Forbidden as error:
            log.warning("could not reach Telegram customer %s: %s", user_id, error)

    async def deliver(self, delivery: Delivery | None) -> None:
        """Send what an agent's action produced (a reply, the closing message)."""
        if delivery is None or not delivery.replies:
            return
        if delivery.channel != CHANNEL:
            log.warning("ticket %s belongs to channel %s, not Telegram: not sent", delivery.ticket.id, delivery.channel)
            return
        await self.ready()
        await self.send_replies(int(delivery.user_id), delivery.replies)

    async def send_replies(self, chat_id: int, replies: list[Reply], markup_for: KeyboardFor = keyboard_for) -> list[Message]:
        """Each reply as HTML messages, its buttons under the last of them."""
        sent = []
        for reply in replies:
            texts = render(reply)
            markup = markup_for(reply)
            for i, text in enumerate(texts):
                sent.append(await self.send_html(chat_id, text, markup if i == len(texts) - 1 else None))
        return sent

    async def send_html(self, chat_id: int, text: str, markup: InlineKeyboardMarkup | None = None) -> Message:
        """One HTML message; should Telegram still refuse the markup, the same words as plain text."""
        bot = self.application.bot
        options = {"reply_markup": markup, "link_preview_options": LinkPreviewOptions(is_disabled=True)}
        try:
            return await bot.send_message(chat_id, text, parse_mode=ParseMode.HTML, **options)
        except BadRequest as error:
            if "entit" not in str(error).lower() and "pars" not in str(error).lower():
                raise
            log.warning("Telegram refused the HTML (%s); sending plain text", error)
            return await bot.send_message(chat_id, html.unescape(_TAG.sub("", text)), **options)

    async def after_turn(self, chat_id: int, turn: Turn, said: str, markup_for: KeyboardFor = keyboard_for) -> None:
        """Send a turn's replies; while an agent has the customer, pass what they said to the
        agents instead; tell the agents of a new ticket."""
        if turn.silent:
            if turn.ticket is not None:
                await self.desk.relay(turn.ticket, said)
            return
        await self.send_replies(chat_id, turn.replies, markup_for)
        if turn.handed_off and turn.ticket is not None:
            await self.on_ticket("opened", turn.ticket)
