"""What each update does.

Customers (private chats): a message goes to the engine; ``/start`` and ``/help`` greet with the
popular questions as buttons; ``/human`` asks for a person; a button press is always answered
(Telegram shows a spinner until it is). While a ticket is open the engine keeps quiet, and what
the customer says is passed to the agents' group.

Agents (the configured group only): a reply to a ticket's message is sent to the customer;
``/take`` in reply assigns the ticket, ``/close`` in reply ends it and the bot takes over again.
Anything else in the group is ignored, as is every other group.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from telegram import CallbackQuery, InlineKeyboardMarkup, Message, Update
from telegram.error import TelegramError
from telegram.ext import CallbackQueryHandler, CommandHandler, ContextTypes, MessageHandler, filters

from bots.channels.telegram.agents import agent_name
from bots.channels.telegram.keyboards import Callback, agent_keyboard, keyboard_for, parse_callback
from bots.channels.telegram.settings import CHANNEL
from bots.desk import TicketError
from bots.replies.messages import say
from bots.replies.reply import Delivery, Reply
from kb.vocabulary import Awaiting, ReplyKind

if TYPE_CHECKING:
    from bots.channels.telegram.bot import TelegramBot

log = logging.getLogger("kb.telegram")

Action = Callable[[], Awaitable[None]]
CUSTOMER_COMMANDS = ("start", "help", "human")
AGENT_COMMANDS = ("take", "close")


def install_handlers(bot: TelegramBot) -> None:
    """Register the customers' and the agents' handlers, and an error handler that logs."""
    handlers = Handlers(bot)
    application = bot.application
    private = filters.ChatType.PRIVATE
    if bot.settings.agents_chat_id:
        desk = filters.Chat(chat_id=bot.settings.agents_chat_id) & filters.REPLY
        application.add_handler(CommandHandler(list(AGENT_COMMANDS), handlers.agent_command, filters=desk))
        application.add_handler(MessageHandler(desk & filters.TEXT & ~filters.COMMAND, handlers.agent_reply))
    application.add_handler(CommandHandler(list(CUSTOMER_COMMANDS), handlers.customer_command, filters=private))
    application.add_handler(MessageHandler(private & filters.UpdateType.MESSAGE, handlers.customer_message))
    application.add_handler(CallbackQueryHandler(handlers.button))
    application.add_error_handler(handlers.error)


class Handlers:
    def __init__(self, bot: TelegramBot) -> None:
        self.bot = bot
        self.engine = bot.engine
        self.desk = bot.desk

    # customers

    async def customer_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        if _is_command(message):  # an unknown command: help, not a question for the knowledge base
            await self._help_or_greet(message, str(user.id), user.language_code, "help")
            return
        text = message.text or message.caption or ""
        turn = await asyncio.to_thread(self.engine.handle, CHANNEL, str(user.id), text)
        await self.bot.after_turn(message.chat_id, turn, text or _describe(message))

    async def customer_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        command = (message.text or "").split()[0].lstrip("/").split("@")[0].lower()
        if command == "human":
            turn = await asyncio.to_thread(self.engine.request_agent, CHANNEL, str(user.id))
            await self.bot.after_turn(message.chat_id, turn, message.text or "/human")
        else:
            await self._help_or_greet(message, str(user.id), user.language_code, command)

    async def _help_or_greet(self, message: Message, user_id: str, language_code: str | None, command: str) -> None:
        """``/start``: a greeting; ``/help`` and unknown commands: how to ask. Both list the
        popular questions as buttons. Nothing while an agent has the customer."""
        conversation = await asyncio.to_thread(self.engine.conversation, CHANNEL, user_id)
        if conversation.with_agent:
            return
        language = conversation.language if conversation.updated_at else _language(language_code)
        reply = await asyncio.to_thread(self.engine.welcome, CHANNEL, user_id, language, command != "start")
        await self.bot.send_replies(message.chat_id, [reply])

    async def button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A button press: answered first (with a short notice when the button has expired),
        then acted on."""
        query = update.callback_query
        if query is None:
            return
        action, notice = None, None
        try:
            action, notice = await self._plan(query, parse_callback(query.data))
        finally:
            try:
                await query.answer(notice)
            except TelegramError as error:  # too late (over 15 s), or already answered
                log.info("could not answer a button press: %s", error)
        if action is not None:
            await action()

    async def _plan(self, query: CallbackQuery, callback: Callback | None) -> tuple[Action | None, str | None]:
        """What a press does (a coroutine function, or None) and the notice to answer it with."""
        message = query.message
        if callback is None or message is None or message.chat.type != "private":
            return None, None
        user_id, chat_id = str(query.from_user.id), message.chat.id
        conversation = await asyncio.to_thread(self.engine.conversation, CHANNEL, user_id)
        language = conversation.language
        if callback.action == "agent":

            async def agent() -> None:
                turn = await asyncio.to_thread(self.engine.request_agent, CHANNEL, user_id)
                await self._drop_buttons(query)
                await self.bot.after_turn(chat_id, turn, say(language, "telegram_agent"))

            return agent, None
        if callback.action in ("solved", "not_solved"):
            with_agent = conversation.with_agent
            other_answer = bool(callback.value) and callback.value != conversation.last_entry_id
            if with_agent or other_answer or conversation.awaiting != Awaiting.FEEDBACK:  # e.g. a second press
                return self._dropping(query), None if with_agent else say(language, "telegram_expired")
            solved = callback.action == "solved"

            def buttons(reply: Reply) -> InlineKeyboardMarkup | None:
                if not solved and reply.kind == ReplyKind.FEEDBACK:  # "not solved": offer a person
                    return agent_keyboard(reply.language)
                return keyboard_for(reply)

            async def feedback() -> None:
                await self._drop_buttons(query)
                turn = await asyncio.to_thread(self.engine.feedback, CHANNEL, user_id, solved)
                await self.bot.after_turn(chat_id, turn, say(language, f"telegram_{callback.action}"), buttons)

            return feedback, None
        if callback.action == "question":
            questions = self.engine.common_questions(callback.value)
            if callback.index >= len(questions):
                return None, say(language, "telegram_expired")
            return self._asks(chat_id, user_id, questions[callback.index]), None
        if callback.action == "pick":
            options = conversation.context.get("options", [])
            if conversation.awaiting != Awaiting.MENU or not 0 <= callback.index <= len(options):
                return self._dropping(query), say(language, "telegram_expired")

            async def pick() -> None:
                await self._drop_buttons(query)
                await self._asks(chat_id, user_id, str(callback.index))()

            return pick, None
        return None, None

    def _asks(self, chat_id: int, user_id: str, text: str) -> Action:
        async def ask() -> None:
            turn = await asyncio.to_thread(self.engine.handle, CHANNEL, user_id, text)
            await self.bot.after_turn(chat_id, turn, text)

        return ask

    def _dropping(self, query: CallbackQuery) -> Action:
        async def drop() -> None:
            await self._drop_buttons(query)

        return drop

    @staticmethod
    async def _drop_buttons(query: CallbackQuery) -> None:
        """Take the buttons off a message once they have done their job (no second vote)."""
        try:
            await query.edit_message_reply_markup(reply_markup=None)
        except TelegramError as error:  # e.g. the message is too old to edit, or has no buttons left
            log.debug("could not remove buttons: %s", error)

    # agents

    async def agent_reply(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """An agent's reply to a ticket's message: the text goes to the customer."""
        message = update.effective_message
        ticket_id = await self._ticket_of(message)
        if message is None or ticket_id is None:
            return
        try:
            delivery = await asyncio.to_thread(
                self.engine.desk.reply, ticket_id, agent_name(update.effective_user), message.text or ""
            )
        except TicketError:
            await self.desk.note(message.message_id, self.desk.say("not_open", id=ticket_id), ticket_id)
            return
        await self.desk.remember(message.message_id, ticket_id)  # replying to the agent's own message works too
        await self._deliver(message, delivery)

    async def agent_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """``/take`` or ``/close`` in reply to a ticket's message."""
        message = update.effective_message
        ticket_id = await self._ticket_of(message)
        if message is None or ticket_id is None:
            return
        command = (message.text or "").split()[0].lstrip("/").split("@")[0].lower()
        agent = agent_name(update.effective_user)
        try:
            if command == "take":
                ticket = await asyncio.to_thread(self.engine.desk.take, ticket_id, agent)
                taken = self.desk.say("taken", agent=ticket.agent or agent, id=ticket_id)
                await self.desk.note(message.message_id, taken, ticket_id)
                return
            delivery = await asyncio.to_thread(self.engine.desk.close, ticket_id, agent)
        except TicketError:
            await self.desk.note(message.message_id, self.desk.say("not_open", id=ticket_id), ticket_id)
            return
        if delivery is None:  # closed already: nothing to tell the customer again
            await self.desk.note(message.message_id, self.desk.say("not_open", id=ticket_id), ticket_id)
            return
        await self._deliver(message, delivery)
        await self.desk.note(message.message_id, self.desk.say("closed", id=ticket_id), ticket_id)

    async def _ticket_of(self, message: Message | None) -> str | None:
        if message is None or message.reply_to_message is None:
            return None
        return await self.desk.ticket_for(message.reply_to_message.message_id)

    async def _deliver(self, message: Message, delivery: Delivery) -> None:
        """Send to the customer; tell the agent in the group when it did not arrive."""
        try:
            await self.bot.deliver(delivery)
        except TelegramError as error:  # Forbidden: the customer blocked the bot
            log.warning("agent's message for ticket %s not delivered: %s", delivery.ticket.id, error)
            await self.desk.note(message.message_id, self.desk.say("undelivered", error=str(error)), delivery.ticket.id)

    # errors

    async def error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A handler failed: log it (by id: the update holds what the customer wrote, which logs
        must not); the other updates carry on."""
        log.error("Telegram update %s failed", getattr(update, "update_id", "?"), exc_info=context.error)


def _is_command(message: Message) -> bool:
    entities = message.entities or ()
    return any(e.type == "bot_command" and e.offset == 0 for e in entities)


def _language(code: str | None) -> str:
    """The customer's language before they have written: Telegram's app language."""
    if not code:
        return "zh"
    return "zh" if code.lower().startswith("zh") else "en"


def _describe(message: Message) -> str:
    """A message without words, as the agents see it."""
    for kind in ("photo", "video", "voice", "audio", "document", "sticker", "location", "contact", "animation"):
        if getattr(message, kind, None):
            return f"[{kind}]"
    return "[message]"
