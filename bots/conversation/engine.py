"""The conversation engine: one customer message in, replies and actions out, for any channel.

Every conversation rule of docs/service-rules.md lives here, once: the three-step answer, a menu of entries at
most once, handing off (money, low confidence, upset, requested, privacy, a locked order) with a
ticket that
carries its SLA, staying quiet while an agent has the customer, order lookup for the order's
owner only, feedback after an answer, and a de-identified question log.

Channels stay thin: they turn their updates into :meth:`Engine.handle` (or :meth:`feedback`,
:meth:`request_agent`) calls and send the :class:`~bots.replies.Turn`'s replies; agents' actions
(``engine.desk``'s take, reply, close) return a :class:`~bots.replies.Delivery` for
the channel to send. The tickets themselves are the desk's (:class:`~bots.desk.Desk`,
``engine.desk``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bots.conversation.reading import Message, read_message
from bots.desk import CustomerLocks, Desk, HandoffTriggers
from bots.desk.sla import in_service_hours
from bots.orders import Order, OrderBackend, OrderBackendError, open_backend, order_steps
from bots.orders.lookup import read_order_question
from bots.replies import Reply, Turn, duration, say
from bots.settings import EngineSettings, Settings, load_settings
from bots.store import Conversation, LoggedQuestion, Pick, StateStore, Ticket, open_store
from kb.config import Config
from kb.model import FaqEntry
from kb.vocabulary import Awaiting, ConversationState, HandoffReason, Outcome, ReplyKind, RouterAction
from retriever import Answer, Retriever
from retriever.answer import RunnerUp

_GREETING = re.compile(r"^(你好|您好|哈喽|嗨|在吗|在不在|有人吗|hi|hello|hey|hiya|good (morning|afternoon|evening))[\s!.?~,]*$")
_THANKS = re.compile(
    r"^(谢谢|多谢|谢啦|感谢|好的|好|ok|okay|嗯|嗯嗯|知道了|明白了|thanks|thank you|thx|cheers|got it)[\s!.?~,]*$"
)
_SOLVED = {"1", "已解决", "解决了", "yes", "y", "solved"}
_NOT_SOLVED = {"2", "未解决", "没解决", "没有解决", "no", "n", "not solved"}


def _candidate(runner_up: RunnerUp) -> dict[str, Any]:
    return {"entry_id": runner_up.entry_id, "question": runner_up.question, "score": runner_up.score}


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
        self._lock = CustomerLocks()
        self.desk = Desk(store, settings, self._lock, clock)
        """Tickets and the agents' actions on them."""
        self._triggers: tuple[str, HandoffTriggers] | None = None

    @classmethod
    def from_config(cls, config: Config, retriever: Retriever | None = None, settings: Settings | None = None) -> Engine:
        settings = settings or load_settings(config)
        store = open_store(settings.engine)
        return cls(
            # Its answers shared through the store with every other worker (a retriever passed in
            # is used as it is).
            retriever or Retriever.from_config(config, shared=store),
            store,
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

    def forget_stale_answers(self) -> int:
        """Drop the answers workers share that no longer serve: other builds', and yesterday's
        (the day is part of their key). How many went."""
        return self.store.forget_answers(self.retriever.kb.build_id, self.clock() - 86_400)

    # customers

    def handle(
        self,
        channel: str,
        user_id: str,
        text: str,
        claimed: Callable[[Turn], tuple[str, str] | None] | None = None,
        release_after_minutes: float = 0.0,
    ) -> Turn:
        """A customer's message: what to reply, and whether a ticket was opened.

        ``claimed``: for a delivery the channel has claimed (a WeChat ``MsgId``), given the turn,
        the (claim key, reply) to record for retries, or None. It is written with the turn, in one
        write: a worker that dies before it leaves the message to a retry to answer; after it, a
        retry repeats the reply. Either way the message is answered, and logged, once.

        ``release_after_minutes``: the channel ends an agent's session after this long without a
        word (WeChat: 30 minutes); an open ticket that quiet is closed without a goodbye and the
        bot answers, instead of keeping silent for an agent who is gone. 0: never."""
        with self._lock(channel, user_id):
            started = time.perf_counter()
            now = self.clock()
            message = read_message(text, "", self.settings.max_message_chars)
            conversation = self.store.begin_turn(channel, user_id, message.text or message.raw, now)
            # A message without words keeps the conversation's language.
            message.language = conversation.language = message.language or conversation.language
            turn = self._respond(conversation, message, release_after_minutes)
            conversation.updated_at = now
            logged = self._logged(conversation, message, turn, started)
            self.store.end_turn(conversation, logged, claimed(turn) if claimed else None)
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
            turn = self._hand_off(conversation, HandoffReason.REQUESTED, "")
            self.store.save_conversation(conversation)
            return turn

    def conversation(self, channel: str, user_id: str) -> Conversation:
        """A copy of the customer's conversation as it stands (its language, whether an agent has it)."""
        return self.store.conversation(channel, user_id)

    def open_ticket(self, channel: str, user_id: str) -> Ticket | None:
        """The customer's open ticket, if any."""
        return self.desk.open_ticket_of(self.store.conversation(channel, user_id))

    def note(self, channel: str, user_id: str, text: str, for_agent: str = "") -> None:
        """Something the channel saw (a follow, an unfollow) in the customer's transcript; with
        ``for_agent``, that is noted on their open ticket too, if they have one."""
        self.store.add_message(channel, user_id, "system", text, self.clock())
        ticket = self.open_ticket(channel, user_id) if for_agent else None
        if ticket is not None:
            self.desk.note(ticket.id, "system", for_agent)

    def welcome(self, channel: str, user_id: str, language: str | None = None, help: bool = False) -> Reply:
        """A welcome (or how to ask) with the popular questions, numbered: the customer may answer
        with a number (``/start``, ``/help``, a new follower)."""
        with self._lock(channel, user_id):
            conversation = self.store.conversation(channel, user_id)
            reply = self._welcome(conversation, language or conversation.language, help)
            self.store.save_conversation(conversation)
            return reply

    def _welcome(self, conversation: Conversation, language: str, help: bool = False) -> Reply:
        questions = self.common_questions(language)
        conversation.awaiting = Awaiting.POPULAR
        conversation.context["popular"] = questions
        return Reply(ReplyKind.GREETING, language, say(language, "help" if help else "greeting"), options=questions)

    def common_questions(self, language: str) -> list[str]:
        questions = self.settings.common_questions
        return list(questions.get(language) or questions.get("en") or [])

    def _respond(self, conversation: Conversation, message: Message, release_after_minutes: float = 0.0) -> Turn:
        if conversation.with_agent:
            ticket = self.desk.open_ticket_of(conversation)
            if ticket is not None and self.desk.is_idle(ticket, release_after_minutes):
                self.desk.release(ticket)
                ticket, conversation.awaiting = None, None
            if ticket is not None:
                self.desk.note(ticket.id, "customer", message.text)
                return Turn(ticket=ticket, silent=True)
            conversation.state, conversation.ticket_id = ConversationState.BOT, None  # closed elsewhere
        if not any(ch.isalnum() for ch in message.normalized):
            return Turn([Reply(ReplyKind.INVALID, message.language, say(message.language, "invalid"))])
        turn = self._awaited(conversation, message) or self._route(conversation, message)
        if message.truncated and turn.replies:
            turn.replies[0].notice = say(message.language, "truncated", limit=self.settings.max_message_chars)
        return turn

    def _awaited(self, conversation: Conversation, message: Message) -> Turn | None:
        """The reply to a question the bot asked (feedback, a number from a list, the phone's last four)."""
        awaiting, text = conversation.awaiting, message.normalized
        if awaiting == Awaiting.FEEDBACK and text in _SOLVED | _NOT_SOLVED:
            return self._feedback(conversation, text in _SOLVED)
        if awaiting == Awaiting.MENU and text.isdigit():
            return self._picked(conversation, message, int(text))
        if awaiting == Awaiting.POPULAR and text.isdigit():
            questions = conversation.context.get("popular", [])
            if 1 <= int(text) <= len(questions):
                # As if the customer had typed the question the number stands for.
                question = read_message(questions[int(text) - 1], message.language, self.settings.max_message_chars)
                return self._route(conversation, question)
        if awaiting == Awaiting.PHONE_LAST4 and re.fullmatch(r"\d{4}", text):
            return self._verify_phone(conversation, message, text)
        return None

    def _picked(self, conversation: Conversation, message: Message, number: int) -> Turn | None:
        """A number answering the menu: an entry, or 0 for none of these (a person takes it)."""
        options = conversation.context.get("options", [])
        if number == 0:
            offered = conversation.context.get("offered", [])
            return self._hand_off(conversation, HandoffReason.LOW_CONFIDENCE, "", offered=offered)
        if 1 <= number <= len(options):
            entry_id = options[number - 1]
            answer = self.retriever.answer_entry(entry_id, message.language, message.text)
            if answer is not None:
                self._learn(conversation, conversation.context.get("menu_question", ""), entry_id, "menu")
                return self._answered(conversation, message, answer)
        return None

    def _route(self, conversation: Conversation, message: Message) -> Turn:
        conversation.awaiting = None
        language, text = message.language, message.normalized
        if text in ("/start", "/help") or _GREETING.match(text):
            return Turn([self._welcome(conversation, language, help=text == "/help")])
        if _THANKS.match(text):
            return Turn([Reply(ReplyKind.SMALLTALK, language, say(language, "thanks"))])
        trigger = self.triggers.match(message.text)
        if trigger is not None:
            answer = self.retriever.ask(message.text) if trigger != HandoffReason.REQUESTED else None
            return self._hand_off(conversation, trigger, message.text, answer)
        order_question = read_order_question(message.text, self._order_number)
        if order_question.number:
            return self._look_up(conversation, message, order_question.number)
        if order_question.asks_status:
            conversation.awaiting = Awaiting.ORDER_NUMBER
            return Turn([Reply(ReplyKind.ASK, language, say(language, "ask_order_number"))])
        answer = self.retriever.ask(message.text)
        if answer.action == RouterAction.ANSWER:
            return self._answered(conversation, message, answer)
        if answer.action == RouterAction.MENU and conversation.clarify_count < 1:
            conversation.clarify_count += 1
            conversation.awaiting = Awaiting.MENU
            conversation.context["options"] = [o.entry_id for o in answer.options]
            conversation.context["offered"] = [_candidate(o) for o in answer.options]
            conversation.context["menu_question"] = message.text
            options = [o.question for o in answer.options]
            none = say(language, "menu_none")
            reply = Reply(ReplyKind.MENU, language, say(language, "menu"), options=options, after=none)
            return Turn([reply], answer=answer)
        return self._hand_off(conversation, answer.handoff_reason or HandoffReason.LOW_CONFIDENCE, message.text, answer)

    def _answered(self, conversation: Conversation, message: Message, answer: Answer) -> Turn:
        records = self.retriever.kb.records.get(answer.entry_id or "", [])
        if any(isinstance(r, FaqEntry) and r.money for r in records):
            return self._hand_off(conversation, HandoffReason.MONEY, message.text, answer)  # picked from a menu
        conversation.clarify_count = 0
        conversation.awaiting = Awaiting.FEEDBACK
        conversation.last_entry_id = answer.entry_id
        conversation.context["last_question"] = message.text
        conversation.context["last_confidence"] = answer.confidence
        reply = Reply(ReplyKind.ANSWER, message.language, steps=answer.steps, asks_feedback=True, entry_id=answer.entry_id)
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
            if conversation.context.get("last_confidence", 1.0) < self.retriever.config.thresholds.answer:
                self._learn(conversation, question, conversation.last_entry_id, "solved")
            return Turn([Reply(ReplyKind.FEEDBACK, language, say(language, "solved"))])
        conversation.failed_count += 1
        if conversation.failed_count >= self.settings.max_failed_answers:
            return self._hand_off(conversation, HandoffReason.UPSET, question)
        return Turn([Reply(ReplyKind.FEEDBACK, language, say(language, "not_solved"))])

    def _learn(self, conversation: Conversation, question: str, entry_id: str | None, source: str) -> None:
        """The customer labelled their own words with an entry (``kb suggest`` proposes them)."""
        if question and entry_id:
            self.store.add_pick(Pick(self.clock(), conversation.channel, question, entry_id, source))

    # orders

    def _look_up(self, conversation: Conversation, message: Message, number: str) -> Turn:
        language = message.language
        try:
            order = self.orders.get(number)
        except OrderBackendError:
            return self._hand_off(conversation, HandoffReason.ORDER_UNAVAILABLE, message.text)
        if order is None:
            conversation.awaiting = Awaiting.ORDER_NUMBER
            return Turn([Reply(ReplyKind.ASK, language, say(language, "order_not_found", number=number))])
        if order.belongs_to(conversation.channel, conversation.user_id) or number in conversation.context.get("verified", []):
            return self._order_answer(conversation, order, language)
        conversation.awaiting = Awaiting.PHONE_LAST4
        conversation.context.update(pending_order=number, phone_attempts=0)
        return Turn([Reply(ReplyKind.ASK, language, say(language, "ask_phone", number=number))])

    def _verify_phone(self, conversation: Conversation, message: Message, last_four: str) -> Turn:
        language = message.language
        number = conversation.context.get("pending_order", "")
        if self._guesses_exceeded(conversation, number):
            # Locked: this guess is not even compared, so the limit cannot be probed past.
            conversation.context.pop("pending_order", None)
            return self._hand_off(conversation, HandoffReason.ORDER_LOCKED, "")
        try:
            order = self.orders.get(number)
        except OrderBackendError:
            return self._hand_off(conversation, HandoffReason.ORDER_UNAVAILABLE, message.text)
        if order is not None and order.phone_ends_with(last_four):
            conversation.context["verified"] = [*conversation.context.get("verified", []), number][-5:]
            conversation.context.pop("pending_order", None)
            return self._order_answer(conversation, order, language)
        attempts = conversation.context.get("phone_attempts", 0) + 1
        conversation.context["phone_attempts"] = attempts
        if attempts >= 3:
            conversation.awaiting = None
            conversation.context.pop("pending_order", None)
            return Turn([Reply(ReplyKind.ASK, language, say(language, "phone_gave_up"))])
        return Turn([Reply(ReplyKind.ASK, language, say(language, "phone_mismatch"))])

    def _guesses_exceeded(self, conversation: Conversation, number: str) -> bool:
        """Count this guess against the order and against the customer, in the state store (so
        that every worker and every made-up user id shares the count); True past either limit."""
        settings, now = self.settings, self.clock()
        window = settings.order_lock_minutes * 60
        per_order = self.store.hit(f"order-guess:{number}", now, window)
        per_customer = self.store.hit(f"order-guess-by:{conversation.channel}:{conversation.user_id}", now, window)
        return per_order > settings.order_guesses_per_order or per_customer > settings.order_guesses_per_customer

    def _order_answer(self, conversation: Conversation, order: Order, language: str) -> Turn:
        conversation.awaiting = None
        return Turn([Reply(ReplyKind.ORDER, language, steps=order_steps(order, language))])

    # handoff

    def _hand_off(
        self,
        conversation: Conversation,
        reason: str,
        message: str,
        answer: Answer | None = None,
        offered: list[dict[str, Any]] | None = None,
    ) -> Turn:
        """Hand the customer to a person: a new ticket, or the open one (a retried handoff opens
        no second ticket and the customer is told an agent already has it). ``offered``: the menu
        the customer turned down, which the ticket keeps as its candidates."""
        language = conversation.language
        ticket = self.desk.open_ticket_of(conversation)
        if ticket is not None:
            return Turn([Reply(ReplyKind.HANDOFF, language, say(language, "already_with_agent"))], ticket=ticket)
        if answer is None and message and reason != HandoffReason.REQUESTED:
            answer = self.retriever.ask(message)
        if offered is not None:
            candidates = [{**c, "offered": True} for c in offered]
        else:
            candidates = [_candidate(c) for c in (answer.candidates[:3] if answer else [])]
        handoff = self.desk.open(conversation, reason, message, candidates)
        conversation.awaiting, conversation.clarify_count, conversation.failed_count = None, 0, 0
        after = self._when(language, handoff.sla.minutes, handoff.opened, handoff.due)
        reply = Reply(ReplyKind.HANDOFF, language, say(language, f"handoff_{reason}"), after=after)
        # What the knowledge base says, as information while the customer waits; never a decision.
        if answer is not None and answer.steps is not None and answer.confidence >= self.retriever.config.thresholds.menu:
            reply.text += "\n\n" + say(language, "info")
            reply.steps, reply.entry_id = answer.steps, answer.entry_id
        self.desk.note(handoff.ticket.id, "bot", reply.plain())
        return Turn([reply], ticket=handoff.ticket, handed_off=handoff.created, answer=answer)

    def _when(self, language: str, minutes: float, opened: datetime, due: datetime) -> str:
        if in_service_hours(self.settings, opened):
            return say(language, "due_in_hours", within=duration(language, minutes), by=due.strftime("%H:%M"))
        day = "" if due.date() == opened.date() else ("明天 " if language == "zh" else "tomorrow ")
        return say(language, "due_outside_hours", hours=self.settings.service_hours.replace("-", "–"), by=f"{day}{due:%H:%M}")

    # the question log

    def _logged(self, conversation: Conversation, message: Message, turn: Turn, started: float) -> LoggedQuestion:
        answer = turn.answer
        first = turn.replies[0] if turn.replies else None
        reason = None
        if turn.silent:
            outcome = Outcome.SILENT
        elif first is None:
            outcome = "none"
        else:
            outcome = first.kind
            if first.kind == ReplyKind.HANDOFF and turn.ticket:
                reason = turn.ticket.reason
        return LoggedQuestion(
            at=self.clock(),
            channel=conversation.channel,
            language=message.language,
            question=message.text or message.raw,
            outcome=outcome,
            reason=reason,
            confidence=round(answer.confidence, 4) if answer else None,
            entry_id=(first.entry_id if first else None) or (answer.entry_id if answer else None),
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
            build=self.retriever.kb.build_id,
        )
