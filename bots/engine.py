"""The conversation engine: one customer message in, replies and actions out, for any channel.

Every conversation rule of domain.md lives here, once: the three-step answer, clarifying at
most once, handing off (money, low confidence, upset, requested, privacy) with a ticket that
carries its SLA, staying quiet while an agent has the customer, order lookup for the order's
owner only, feedback after an answer, and a de-identified question log.

Channels stay thin: they turn their updates into :meth:`Engine.handle` (or :meth:`feedback`,
:meth:`request_agent`) calls and send the :class:`~bots.reply.Turn`'s replies; agents' actions
(:meth:`take`, :meth:`agent_reply`, :meth:`close`) return a :class:`~bots.reply.Delivery` for
the channel to send.
"""

from __future__ import annotations

import re
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bots.messages import duration, say
from bots.orders import Order, OrderBackend, OrderBackendError, open_backend, order_steps
from bots.orders.lookup import read_order_question
from bots.reply import Delivery, Reply, Turn
from bots.settings import EngineSettings, Settings, load_settings
from bots.sla import classify, due_time, in_service_hours
from bots.store import OPEN_STATES, Conversation, LoggedQuestion, SqliteStateStore, StateStore, Ticket, new_ticket_id
from bots.triggers import HandoffTriggers
from kb.config import Config
from kb.model import FaqEntry
from kb.text import detect_language, normalize
from retriever import Answer, Retriever

_UNPRINTABLE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffd\ufeff]")
_GREETING = re.compile(r"^(你好|您好|哈喽|嗨|在吗|在不在|有人吗|hi|hello|hey|hiya|good (morning|afternoon|evening))[\s!.?~,]*$")
_THANKS = re.compile(
    r"^(谢谢|多谢|谢啦|感谢|好的|好|ok|okay|嗯|嗯嗯|知道了|明白了|thanks|thank you|thx|cheers|got it)[\s!.?~,]*$"
)
_LOCK_STRIPES = 256
_SOLVED = {"1", "已解决", "解决了", "yes", "y", "solved"}
_NOT_SOLVED = {"2", "未解决", "没解决", "没有解决", "no", "n", "not solved"}


class TicketError(LookupError):
    """No such ticket, or it is closed."""


@dataclass
class _Message:
    text: str
    normalized: str
    language: str
    truncated: bool
    raw: str


class Engine:
    """The channel-agnostic conversation engine.

    >>> engine = Engine.from_config(load_config())
    >>> engine.handle("telegram", "42", "东西坏了能退吗").replies[0].steps.conclusion
    '可以。...'

    Thread-safe; one customer's messages are handled one at a time.
    """

    def __init__(
        self,
        retriever: Retriever,
        store: StateStore,
        orders: OrderBackend,
        settings: EngineSettings,
        order_number_pattern: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.retriever = retriever
        self.store = store
        self.orders = orders
        self.settings = settings
        self.clock = clock
        self._order_number = re.compile(order_number_pattern)
        # A fixed set of locks shared by hash: one customer's messages stay in order, and memory
        # does not grow with the number of customers a long-running server has seen.
        self._locks = [threading.RLock() for _ in range(_LOCK_STRIPES)]
        self._triggers: tuple[str, HandoffTriggers] | None = None

    @classmethod
    def from_config(cls, config: Config, retriever: Retriever | None = None, settings: Settings | None = None) -> Engine:
        settings = settings or load_settings(config)
        return cls(
            retriever or Retriever.from_config(config),
            SqliteStateStore(settings.engine.state_path),
            open_backend(settings.orders),
            settings.engine,
            settings.orders.number_pattern,
        )

    @property
    def triggers(self) -> HandoffTriggers:
        kb = self.retriever.kb
        cached = self._triggers
        if cached is None or cached[0] != kb.build_id:
            cached = (kb.build_id, HandoffTriggers.from_build_rules(kb.rules))
            self._triggers = cached
        return cached[1]

    def _lock(self, channel: str, user_id: str) -> threading.RLock:
        return self._locks[hash((channel, user_id)) % _LOCK_STRIPES]

    # customers

    def handle(self, channel: str, user_id: str, text: str) -> Turn:
        """A customer's message: what to reply, and whether a ticket was opened."""
        with self._lock(channel, user_id):
            started = time.perf_counter()
            conversation = self.store.conversation(channel, user_id)
            message = self._read(text, conversation.language)
            conversation.language = message.language
            now = self.clock()
            self.store.add_message(channel, user_id, "customer", message.text or message.raw, now)
            turn = self._respond(conversation, message)
            conversation.updated_at = now
            self.store.save_conversation(conversation)
            self._record(conversation, message, turn, started)
            return turn

    def feedback(self, channel: str, user_id: str, solved: bool) -> Turn:
        """The customer pressed solved / not solved under the last answer."""
        with self._lock(channel, user_id):
            conversation = self.store.conversation(channel, user_id)
            turn = self._feedback(conversation, solved)
            self.store.save_conversation(conversation)
            return turn

    def request_agent(self, channel: str, user_id: str) -> Turn:
        """The customer asked for a person (a button, ``/human``)."""
        with self._lock(channel, user_id):
            conversation = self.store.conversation(channel, user_id)
            turn = self._open_or_silent(conversation, "requested", "")
            self.store.save_conversation(conversation)
            return turn

    def greeting(self, language: str = "zh") -> Reply:
        """A welcome with popular questions (``/start``, a new follower)."""
        return Reply("greeting", language, say(language, "greeting"), options=self.common_questions(language))

    def help(self, language: str = "zh") -> Reply:
        return Reply("greeting", language, say(language, "help"), options=self.common_questions(language))

    def common_questions(self, language: str) -> list[str]:
        questions = self.settings.common_questions
        return list(questions.get(language) or questions.get("en") or [])

    def _read(self, text: str, language: str) -> _Message:
        text = unicodedata.normalize("NFC", text or "")
        cleaned = _UNPRINTABLE.sub("", text).strip()
        if len(cleaned) < len(text.strip()) / 2:
            cleaned = ""  # mostly control bytes: binary, not words
        limit = self.settings.max_message_chars
        truncated = len(cleaned) > limit
        cleaned = cleaned[:limit]
        normalized = normalize(cleaned)
        has_words = any(ch.isalpha() for ch in normalized)
        language = detect_language(cleaned) if has_words else language
        return _Message(cleaned, normalized, language, truncated, (text or "")[:limit])

    def _respond(self, conversation: Conversation, message: _Message) -> Turn:
        if conversation.state in OPEN_STATES:
            ticket = self.store.ticket(conversation.ticket_id or "")
            if ticket is not None and ticket.is_open:
                self.store.add_ticket_message(ticket.id, "customer", message.text, self.clock())
                return Turn(ticket=ticket, silent=True)
            conversation.state, conversation.ticket_id = "bot", None  # closed elsewhere
        if not any(ch.isalnum() for ch in message.normalized):
            return Turn([Reply("invalid", message.language, say(message.language, "invalid"))])
        turn = self._awaited(conversation, message) or self._route(conversation, message)
        if message.truncated and turn.replies:
            turn.replies[0].notice = say(message.language, "truncated", limit=self.settings.max_message_chars)
        return turn

    def _awaited(self, conversation: Conversation, message: _Message) -> Turn | None:
        """The reply to a question the bot asked (feedback, which entry, the phone's last four)."""
        awaiting, text = conversation.awaiting, message.normalized
        if awaiting == "feedback" and text in _SOLVED | _NOT_SOLVED:
            return self._feedback(conversation, text in _SOLVED)
        if awaiting == "clarify" and text.isdigit():
            options = conversation.context.get("options", [])
            if 1 <= int(text) <= len(options):
                answer = self.retriever.answer_entry(options[int(text) - 1], message.language, message.text)
                if answer is not None:
                    return self._answered(conversation, message, answer)
        if awaiting == "phone_last4" and re.fullmatch(r"\d{4}", text):
            return self._verify_phone(conversation, message, text)
        return None

    def _route(self, conversation: Conversation, message: _Message) -> Turn:
        conversation.awaiting = None
        language, text = message.language, message.normalized
        if text in ("/start", "/help"):
            return Turn([self.greeting(language) if text == "/start" else self.help(language)])
        if _GREETING.match(text):
            return Turn([self.greeting(language)])
        if _THANKS.match(text):
            return Turn([Reply("smalltalk", language, say(language, "thanks"))])
        trigger = self.triggers.match(message.text)
        if trigger is not None:
            answer = self.retriever.ask(message.text) if trigger != "requested" else None
            return self._open_or_silent(conversation, trigger, message.text, answer)
        order_question = read_order_question(message.text, self._order_number)
        if order_question.number:
            return self._look_up(conversation, message, order_question.number)
        if order_question.asks_status:
            conversation.awaiting = "order_number"
            return Turn([Reply("ask", language, say(language, "ask_order_number"))])
        answer = self.retriever.ask(message.text)
        if answer.action == "answer":
            return self._answered(conversation, message, answer)
        if answer.action == "clarify" and conversation.clarify_count < 1:
            conversation.clarify_count += 1
            conversation.awaiting = "clarify"
            conversation.context["options"] = [o.entry_id for o in answer.options]
            reply = Reply("clarify", language, say(language, "clarify"), options=[o.question for o in answer.options])
            return Turn([reply], answer=answer)
        return self._open_or_silent(conversation, answer.handoff_reason or "low_confidence", message.text, answer)

    def _answered(self, conversation: Conversation, message: _Message, answer: Answer) -> Turn:
        records = self.retriever.kb.records.get(answer.entry_id or "", [])
        if any(isinstance(r, FaqEntry) and r.money for r in records):
            return self._open_or_silent(conversation, "money", message.text, answer)  # picked from a clarify
        conversation.clarify_count = 0
        conversation.awaiting = "feedback"
        conversation.last_entry_id = answer.entry_id
        conversation.context["last_question"] = message.text
        reply = Reply("answer", message.language, steps=answer.steps, asks_feedback=True, entry_id=answer.entry_id)
        return Turn([reply], answer=answer)

    def _feedback(self, conversation: Conversation, solved: bool) -> Turn:
        language = conversation.language
        question = conversation.context.get("last_question", "")
        self.store.add_feedback(
            conversation.channel, conversation.user_id, conversation.last_entry_id, solved, question, self.clock()
        )
        conversation.awaiting = None
        if solved:
            conversation.failed_count = 0
            return Turn([Reply("feedback", language, say(language, "solved"))])
        conversation.failed_count += 1
        if conversation.failed_count >= self.settings.max_failed_answers:
            return self._open_or_silent(conversation, "upset", question)
        return Turn([Reply("feedback", language, say(language, "not_solved"))])

    # orders

    def _look_up(self, conversation: Conversation, message: _Message, number: str) -> Turn:
        language = message.language
        try:
            order = self.orders.get(number)
        except OrderBackendError:
            return self._open_or_silent(conversation, "order_unavailable", message.text)
        if order is None:
            conversation.awaiting = "order_number"
            return Turn([Reply("ask", language, say(language, "order_not_found", number=number))])
        if order.belongs_to(conversation.channel, conversation.user_id) or number in conversation.context.get("verified", []):
            return self._order_answer(conversation, order, language)
        conversation.awaiting = "phone_last4"
        conversation.context.update(pending_order=number, phone_attempts=0)
        return Turn([Reply("ask", language, say(language, "ask_phone", number=number))])

    def _verify_phone(self, conversation: Conversation, message: _Message, last_four: str) -> Turn:
        language = message.language
        number = conversation.context.get("pending_order", "")
        try:
            order = self.orders.get(number)
        except OrderBackendError:
            return self._open_or_silent(conversation, "order_unavailable", message.text)
        if order is not None and order.phone_ends_with(last_four):
            conversation.context["verified"] = [*conversation.context.get("verified", []), number][-5:]
            conversation.context.pop("pending_order", None)
            return self._order_answer(conversation, order, language)
        attempts = conversation.context.get("phone_attempts", 0) + 1
        conversation.context["phone_attempts"] = attempts
        if attempts >= 3:
            conversation.awaiting = None
            conversation.context.pop("pending_order", None)
            return Turn([Reply("ask", language, say(language, "phone_gave_up"))])
        return Turn([Reply("ask", language, say(language, "phone_mismatch"))])

    def _order_answer(self, conversation: Conversation, order: Order, language: str) -> Turn:
        conversation.awaiting = None
        return Turn([Reply("order", language, steps=order_steps(order, language))])

    # handoff

    def _open_or_silent(self, conversation: Conversation, reason: str, message: str, answer: Answer | None = None) -> Turn:
        """Open a ticket (or find the open one: a retried handoff opens no second ticket)."""
        language = conversation.language
        if conversation.state in OPEN_STATES and conversation.ticket_id:
            ticket = self.store.ticket(conversation.ticket_id)
            if ticket is not None and ticket.is_open:
                return Turn([Reply("handoff", language, say(language, "already_with_agent"))], ticket=ticket)
        now = self.clock()
        if answer is None and message and reason != "requested":
            answer = self.retriever.ask(message)
        sla = classify(reason, message)
        opened = datetime.fromtimestamp(now, self.settings.zone)
        due = due_time(self.settings, sla, opened)
        candidates = [
            {"entry_id": c.entry_id, "question": c.question, "score": c.score} for c in (answer.candidates[:3] if answer else [])
        ]
        ticket = Ticket(
            id=new_ticket_id(),
            channel=conversation.channel,
            user_id=conversation.user_id,
            state="waiting",
            reason=reason,
            kind=sla.kind,
            priority=sla.priority,
            language=language,
            created_at=now,
            due_at=due.timestamp(),
            touched_at=now,
            candidates=candidates,
            messages=self.store.recent_messages(conversation.channel, conversation.user_id),
        )
        ticket, created = self.store.open_ticket(ticket)
        conversation.state, conversation.ticket_id = ticket.state, ticket.id
        conversation.awaiting, conversation.clarify_count, conversation.failed_count = None, 0, 0
        reply = Reply(
            "handoff", language, say(language, f"handoff_{reason}"), after=self._when(language, sla.minutes, opened, due)
        )
        # What the knowledge base says, as information while the customer waits; never a decision.
        if answer is not None and answer.steps is not None and answer.confidence >= self.retriever.config.thresholds.clarify:
            reply.text += "\n\n" + say(language, "info")
            reply.steps, reply.entry_id = answer.steps, answer.entry_id
        self.store.add_ticket_message(ticket.id, "bot", reply.plain(), now)
        return Turn([reply], ticket=ticket, handed_off=created, answer=answer)

    def _when(self, language: str, minutes: float, opened: datetime, due: datetime) -> str:
        if in_service_hours(self.settings, opened):
            return say(language, "due_in_hours", within=duration(language, minutes), by=due.strftime("%H:%M"))
        day = "" if due.date() == opened.date() else ("明天 " if language == "zh" else "tomorrow ")
        return say(language, "due_outside_hours", hours=self.settings.service_hours.replace("-", "–"), by=f"{day}{due:%H:%M}")

    # agents

    def tickets(self, states: tuple[str, ...] = OPEN_STATES) -> list[Ticket]:
        """Tickets, most urgent first."""
        return self.store.tickets(states)

    def ticket(self, ticket_id: str) -> Ticket:
        ticket = self.store.ticket(ticket_id)
        if ticket is None:
            raise TicketError(f"no ticket {ticket_id}")
        return ticket

    def _open_ticket(self, ticket_id: str) -> Ticket:
        ticket = self.ticket(ticket_id)
        if not ticket.is_open:
            raise TicketError(f"ticket {ticket_id} is closed")
        return ticket

    def take(self, ticket_id: str, agent: str) -> Ticket:
        """An agent takes the ticket (waiting → human). Taking it again changes nothing."""
        ticket = self._open_ticket(ticket_id)
        if ticket.state == "waiting" or ticket.agent != agent:
            self.store.update_ticket(ticket_id, state="human", agent=agent, touched_at=self.clock())
            self._set_conversation(ticket, "human", ticket.id)
        return self.ticket(ticket_id)

    def agent_reply(self, ticket_id: str, agent: str, text: str) -> Delivery:
        """An agent's words for the customer; the channel sends the delivery."""
        ticket = self._open_ticket(ticket_id)
        if ticket.state == "waiting" or not ticket.agent:
            ticket = self.take(ticket_id, agent)
        now = self.clock()
        self.store.add_ticket_message(ticket_id, f"agent:{agent}", text, now)
        self.store.add_message(ticket.channel, ticket.user_id, f"agent:{agent}", text, now)
        self.store.update_ticket(ticket_id, touched_at=now)
        return Delivery(ticket.channel, ticket.user_id, [Reply("agent", ticket.language, text)], self.ticket(ticket_id))

    def close(self, ticket_id: str, agent: str = "", notify: bool = True) -> Delivery | None:
        """End the ticket; the bot takes the conversation back. Closing twice changes nothing.

        ``notify=False`` when the channel ended the session itself (WeChat releases it after 30
        minutes): the customer is not told again."""
        ticket = self.ticket(ticket_id)
        if not ticket.is_open:
            return None
        now = self.clock()
        self.store.update_ticket(ticket_id, state="closed", closed_at=now, touched_at=now)
        self.store.add_ticket_message(ticket_id, f"agent:{agent}" if agent else "system", "closed", now)
        self._set_conversation(ticket, "bot", None)
        replies = [Reply("closed", ticket.language, say(ticket.language, "closed"))] if notify else []
        return Delivery(ticket.channel, ticket.user_id, replies, self.ticket(ticket_id))

    def escalate_overdue(self) -> list[Ticket]:
        """Tickets untouched for ``escalate_after_hours``: escalated (urgent), returned to notify."""
        now = self.clock()
        limit = now - self.settings.escalate_after_hours * 3600
        escalated = []
        for ticket in self.store.tickets():
            if ticket.escalated_at is None and ticket.touched_at <= limit:
                self.store.update_ticket(ticket.id, escalated_at=now, priority="urgent")
                self.store.add_ticket_message(ticket.id, "system", "escalated: untouched for 24 hours", now)
                escalated.append(self.ticket(ticket.id))
        return escalated

    def _set_conversation(self, ticket: Ticket, state: str, ticket_id: str | None) -> None:
        with self._lock(ticket.channel, ticket.user_id):
            conversation = self.store.conversation(ticket.channel, ticket.user_id)
            conversation.state, conversation.ticket_id = state, ticket_id
            if state == "bot":
                conversation.awaiting = None
            self.store.save_conversation(conversation)

    # the question log

    def _record(self, conversation: Conversation, message: _Message, turn: Turn, started: float) -> None:
        answer = turn.answer
        if turn.silent:
            outcome, reason = "silent", None
        elif turn.replies and turn.replies[0].kind in ("answer", "order", "clarify", "handoff", "invalid"):
            outcome = turn.replies[0].kind
            reason = turn.ticket.reason if turn.replies[0].kind == "handoff" and turn.ticket else None
        else:
            outcome, reason = turn.replies[0].kind if turn.replies else "none", None
        self.store.log_question(
            LoggedQuestion(
                at=self.clock(),
                channel=conversation.channel,
                language=message.language,
                question=message.text or message.raw,
                outcome=outcome,
                reason=reason,
                confidence=round(answer.confidence, 4) if answer else None,
                entry_id=(turn.replies[0].entry_id if turn.replies else None) or (answer.entry_id if answer else None),
                latency_ms=round((time.perf_counter() - started) * 1000, 2),
                build=self.retriever.kb.build_id,
            )
        )
