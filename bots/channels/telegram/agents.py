"""The agents' group chat as the agents' desk.

A handoff is posted to the group with what an agent needs to pick it up: the reason, the SLA due
time, the (already de-identified) transcript and the knowledge base's top candidates. Every
message of the bot in the group that concerns a ticket is remembered in the state store
(``telegram:desk:<chat>:<message>`` → ticket id), so that an agent answers a customer simply by
replying to it, from any worker and after a restart. What the customer adds while waiting is
posted as a reply to the ticket's post.

The wording here is for agents, in ``[telegram] agents_language``; customers never see it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from telegram import Bot, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import TelegramError

from bots.channels.hub import ChannelHub
from bots.channels.telegram.format import Line, Paragraph, chunks, paragraph
from bots.channels.telegram.settings import CHANNEL, TelegramSettings
from bots.pii import mask_text
from bots.store import Ticket

log = logging.getLogger("kb.telegram")

REMEMBER_FOR = 90 * 24 * 3600.0
"""How long a post stays answerable (seconds); tickets are closed long before."""
MAX_TRANSCRIPT_MESSAGES = 30
MAX_MESSAGE_CHARS = 600

DESK: dict[str, dict[str, str]] = {
    "zh": {
        "ticket": "🆕 工单 {id}",
        "reason": "原因：{reason}",
        "kind": "类型：{kind} · 优先级：{priority}",
        "due": "首次回复截止：{due}",
        "customer": "客户：Telegram {user}（{language}）",
        "transcript": "对话记录",
        "candidates": "知识库候选",
        "none": "（无）",
        "how": "直接回复本消息即可答复客户；回复 /take 认领，回复 /close 结束并交还机器人。",
        "customer_said": "💬 {id} 客户补充：",
        "escalated": "⏰ 工单 {id} 超过 {hours:g} 小时无人处理，已升级为紧急。",
        "taken": "✅ {agent} 已认领工单 {id}。",
        "closed": "✅ 工单 {id} 已结束，机器人继续接待该客户。",
        "not_open": "⚠️ 工单 {id} 已经结束，消息没有发出。",
        "undelivered": "⚠️ 消息没能送达客户：{error}",
        "customer_author": "客户",
        "bot_author": "机器人",
        "agent_author": "客服 {name}",
        "system_author": "系统",
        "money": "涉及金额",
        "low_confidence": "知识库没有把握",
        "upset": "客户不满",
        "requested": "客户要求人工",
        "privacy": "账户安全 / 隐私",
        "order_unavailable": "订单系统无响应",
        "order_locked": "订单验证次数过多，已锁定",
        "question": "咨询",
        "complaint": "投诉",
        "suggestion": "建议",
        "fault": "故障",
        "urgent": "🔴 紧急",
        "high": "🟠 高",
        "normal": "普通",
        "low": "低",
    },
    "en": {
        "ticket": "🆕 Ticket {id}",
        "reason": "Reason: {reason}",
        "kind": "Kind: {kind} · priority: {priority}",
        "due": "First response due: {due}",
        "customer": "Customer: Telegram {user} ({language})",
        "transcript": "Transcript",
        "candidates": "Knowledge-base candidates",
        "none": "(none)",
        "how": "Reply to this message to answer the customer; reply /take to take it, /close to end it and hand back to the bot.",
        "customer_said": "💬 {id} the customer adds:",
        "escalated": "⏰ Ticket {id} was untouched for {hours:g} hours and is now urgent.",
        "taken": "✅ {agent} took ticket {id}.",
        "closed": "✅ Ticket {id} is closed; the bot has the customer again.",
        "not_open": "⚠️ Ticket {id} is already closed; the message was not sent.",
        "undelivered": "⚠️ The message did not reach the customer: {error}",
        "customer_author": "Customer",
        "bot_author": "Bot",
        "agent_author": "Agent {name}",
        "system_author": "System",
        "money": "money involved",
        "low_confidence": "no confident answer",
        "upset": "customer upset",
        "requested": "customer asked for a person",
        "privacy": "account security / privacy",
        "order_unavailable": "order system not answering",
        "order_locked": "order locked: too many phone guesses",
        "question": "question",
        "complaint": "complaint",
        "suggestion": "suggestion",
        "fault": "fault",
        "urgent": "🔴 urgent",
        "high": "🟠 high",
        "normal": "normal",
        "low": "low",
    },
}


class AgentsDesk:
    """Posts tickets to the agents' group and finds the ticket an agent's reply is about."""

    def __init__(self, hub: ChannelHub, settings: TelegramSettings, bot: Bot, ready: Callable[[], Awaitable[None]]) -> None:
        self.engine = hub.engine
        self.claims = hub.claims
        self.values = hub.values
        self.settings = settings
        self.chat_id = settings.agents_chat_id
        self.bot = bot
        self._ready = ready
        self._words = DESK[settings.agents_language]

    @property
    def enabled(self) -> bool:
        return bool(self.chat_id)

    def say(self, key: str, **values: object) -> str:
        return self._words.get(key, key).format(**values)

    # the store: which post is about which ticket

    async def ticket_for(self, message_id: int) -> str | None:
        """The ticket a message in the group is about (None: not a ticket's message)."""
        return await asyncio.to_thread(self.values.get_value, f"telegram:desk:{self.chat_id}:{message_id}", time.time())

    async def remember(self, message_id: int, ticket_id: str) -> None:
        await asyncio.to_thread(
            self.values.set_value, f"telegram:desk:{self.chat_id}:{message_id}", ticket_id, time.time() + REMEMBER_FOR
        )

    async def _post_of(self, ticket_id: str) -> int | None:
        value = await asyncio.to_thread(self.values.get_value, f"telegram:desk-post:{ticket_id}", time.time())
        return int(value) if value else None

    # posting

    async def on_ticket(self, event: str, ticket: Ticket) -> None:
        """A ticket listener (:meth:`ChannelHub.add_listener`): post Telegram customers' new and
        escalated tickets."""
        if ticket.channel != CHANNEL or not self.enabled:
            return
        if event == "opened":
            await self.post_ticket(ticket)
        elif event == "escalated":
            post = await self._post_of(ticket.id)
            await self.note(post, self.say("escalated", id=ticket.id, hours=self.engine.settings.escalate_after_hours), ticket.id)

    async def post_ticket(self, ticket: Ticket) -> list[int]:
        """Post a new ticket (once: a second call for the same ticket posts nothing)."""
        if not self.enabled or not await asyncio.to_thread(self.claims.claim, f"telegram:posted:{ticket.id}", time.time()):
            return []
        ticket = await asyncio.to_thread(self.engine.desk.ticket, ticket.id)  # with the bot's handoff message
        ids = await self._send(chunks(self.ticket_post(ticket)), None, ticket.id)
        if ids:
            key, until = f"telegram:desk-post:{ticket.id}", time.time() + REMEMBER_FOR
            await asyncio.to_thread(self.values.set_value, key, str(ids[0]), until)
        return ids

    async def relay(self, ticket: Ticket, text: str) -> None:
        """What a waiting customer adds, as a reply to the ticket's post (masked like the transcript)."""
        if not self.enabled:
            return
        post = await self._post_of(ticket.id)
        lines = [Line(self.say("customer_said", id=ticket.id), "b"), *paragraph(mask_text(text))]
        await self._send(chunks([lines]), post, ticket.id)

    async def note(self, reply_to: int | None, text: str, ticket_id: str | None = None) -> None:
        """A short line in the group (taken, closed, not delivered), answerable like the post."""
        if self.enabled:
            await self._send(chunks([paragraph(text)]), reply_to, ticket_id)

    async def _send(self, texts: list[str], reply_to: int | None, ticket_id: str | None) -> list[int]:
        await self._ready()
        ids: list[int] = []
        for text in texts:
            target = ids[0] if ids else reply_to
            try:
                message = await self.bot.send_message(
                    self.chat_id,
                    text,
                    parse_mode=ParseMode.HTML,
                    reply_parameters=ReplyParameters(target, allow_sending_without_reply=True) if target else None,
                )
            except TelegramError as error:
                log.error("could not post to the agents' group %s: %s", self.chat_id, error)
                break
            ids.append(message.message_id)
            if ticket_id:
                await self.remember(message.message_id, ticket_id)
        return ids

    # what a post says

    def ticket_post(self, ticket: Ticket) -> list[Paragraph]:
        """The ticket as paragraphs: header, reason, SLA, customer; transcript; candidates; how to answer."""
        say, zone = self.say, self.engine.settings.zone
        due = datetime.fromtimestamp(ticket.due_at, zone)
        header = [
            Line(say("ticket", id=ticket.id), "b"),
            Line(say("reason", reason=f"{self._label(ticket.reason)} ({ticket.reason})")),
            Line(say("kind", kind=self._label(ticket.kind), priority=self._label(ticket.priority))),
            Line(say("due", due=f"{due:%Y-%m-%d %H:%M} ({self.engine.settings.timezone})")),
            Line(say("customer", user=ticket.user_id, language=ticket.language)),
        ]
        transcript: Paragraph = [Line(say("transcript"), "b")]
        for message in ticket.messages[-MAX_TRANSCRIPT_MESSAGES:]:
            at = datetime.fromtimestamp(message.at, zone)
            first, *rest = message.text.strip().splitlines() or ["…"]
            if message.author == "bot":  # what the bot said is known: its first line is enough
                first, rest = first + (" …" if rest else ""), []
            text = "\n".join([first, *rest])
            text = text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + "…"
            first, *rest = text.splitlines()
            transcript.append(Line(f"{at:%H:%M} {self._author(message.author)}: {first}"))
            transcript += [Line(f"    {line}") for line in rest if line.strip()]
        candidates: Paragraph = [Line(say("candidates"), "b")]
        candidates += [
            Line(f"{i + 1}. {c.get('question', '')} ({c.get('entry_id', '')}, {float(c.get('score', 0)):.2f})")
            for i, c in enumerate(ticket.candidates[:3])
        ] or [Line(say("none"))]
        return [header, transcript, candidates, [Line(say("how"), "i")]]

    def _label(self, code: str) -> str:
        return self._words.get(code, code)

    def _author(self, author: str) -> str:
        if author.startswith("agent:"):
            return self.say("agent_author", name=author.removeprefix("agent:"))
        return self._words.get(f"{author}_author", author)


def agent_name(user: Any) -> str:
    """How an agent is named on the ticket: @username, else the name and id."""
    if user is None:
        return "agent"
    if getattr(user, "username", None):
        return f"@{user.username}"
    return f"{user.full_name} ({user.id})"
