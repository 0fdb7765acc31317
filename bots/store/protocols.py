"""The state store's interface, split by role: each caller depends on the roles it uses.

:class:`StateStore` is all of them together, as each backend (:mod:`bots.store.sqlite`, :mod:`bots.store.postgres`)
fills them. Every free text is masked (:func:`bots.pii.mask_text`) by the store on its way in.
"""

from __future__ import annotations

from typing import Any, Protocol

from bots.store.records import Account, Conversation, DeskSession, FeedbackEvent, LoggedQuestion, Pick, Ticket, TicketMessage
from kb.vocabulary import OPEN_TICKET_STATES


class Conversations(Protocol):
    """Each customer's conversation state, and the transcript of what was said."""

    def conversation(self, channel: str, user_id: str) -> Conversation: ...
    def save_conversation(self, conversation: Conversation) -> None: ...
    def add_message(self, channel: str, user_id: str, author: str, text: str, at: float) -> None: ...
    def recent_messages(self, channel: str, user_id: str, limit: int = 20) -> list[TicketMessage]: ...


class Turns(Protocol):
    """A customer's message as the engine handles it, in two calls that are each one round trip
    to the store (with PostgreSQL over a network, the round trips are most of a turn's cost)."""

    def begin_turn(self, channel: str, user_id: str, text: str, at: float) -> Conversation:
        """The customer's conversation, once their message ``text`` is in its transcript."""
        ...

    def end_turn(self, conversation: Conversation, entry: LoggedQuestion, claimed: tuple[str, str] | None = None) -> None:
        """Save the conversation and log the question it was asked, together; with ``claimed``
        (a :class:`Claims` key, the reply), that reply recorded for the claim in the same write:
        a retried delivery repeats the reply exactly when the turn counted."""
        ...


class Tickets(Protocol):
    """Handoff tickets: at most one open per customer."""

    def open_ticket(self, ticket: Ticket) -> tuple[Ticket, bool]: ...
    def ticket(self, ticket_id: str) -> Ticket | None: ...
    def tickets(
        self, states: tuple[str, ...] = OPEN_TICKET_STATES, limit: int | None = None, offset: int = 0
    ) -> list[Ticket]: ...
    def count_tickets(self, states: tuple[str, ...] = OPEN_TICKET_STATES) -> int: ...
    def update_ticket(self, ticket_id: str, **fields: Any) -> None: ...
    def add_ticket_message(self, ticket_id: str, author: str, text: str, at: float) -> None: ...
    def first_responses(self, since: float = 0.0) -> dict[str, float]:
        """Ticket id → the time of its first agent message, for tickets opened since ``since``."""
        ...


class Feedback(Protocol):
    """Solved / not solved after an answer."""

    def add_feedback(self, channel: str, user_id: str, entry_id: str | None, solved: bool, question: str, at: float) -> None: ...
    def feedback_by_entry(self) -> dict[str, tuple[int, int]]: ...
    def feedback_since(self, since: float = 0.0) -> list[FeedbackEvent]: ...


class QuestionLog(Protocol):
    """Every question and how it ended, de-identified: what editors read (``kb report``)."""

    def log_question(self, entry: LoggedQuestion) -> None: ...
    def questions(self, since: float = 0.0) -> list[LoggedQuestion]: ...


class Learning(Protocol):
    """Customers' phrasings labelled by their picks, and the editors' decisions on suggestions."""

    def add_pick(self, pick: Pick) -> None: ...
    def picks(self, since: float = 0.0) -> list[Pick]: ...
    def decide(self, suggestion: str, decision: str, at: float) -> None: ...
    def decisions(self) -> dict[str, str]: ...


class Claims(Protocol):
    """A delivery retried by a channel (a WeChat MsgId) is processed once, by any worker."""

    def claim(self, key: str, at: float, holder: str = "", reply: str | None = None) -> bool:
        """True for the first caller with ``key`` (``reply`` recorded with it at once), False for
        every retry (a Telegram ticket posted to the agents' group once, whichever worker opened it)."""
        ...

    def claim_delivery(self, nonce: str, key: str, at: float, holder: str) -> tuple[bool, bool]:
        """A signed delivery of message ``key``, in one call: its signature's ``nonce`` is used
        once, by this message only, and the message is claimed by ``holder``. Returns (accepted,
        first): not accepted when the nonce came before with another message (a replayed
        signature: nothing is claimed); first for the first delivery of ``key`` in any worker."""
        ...

    def claim_holder(self, key: str) -> tuple[str, float] | None:
        """(holder, since when) of a claim not answered yet; None when answered or unknown."""
        ...

    def take_over(self, key: str, holder_was: str, holder: str, at: float) -> bool:
        """Make ``holder`` the holder of an unanswered claim still held by ``holder_was``; True
        for one caller only (the holder died: its retry is answered by whoever takes it over)."""
        ...

    def claimed_reply(self, key: str) -> str | None: ...
    def set_claimed_reply(self, key: str, reply: str) -> None: ...
    def forget_claims(self, before: float) -> int: ...


class Answers(Protocol):
    """The retriever's answers shared by every worker (:class:`retriever.SharedAnswers`), kept
    under a digest of the question, never its words; an answer to a question that carries
    personal data is not shared."""

    def shared_answer(self, key: str) -> str | None: ...
    def share_answer(self, key: str, build: str, question: str, answer: str) -> None: ...
    def forget_answers(self, keep_build: str, before: float) -> int:
        """Drop the answers of builds other than ``keep_build`` and those shared before ``before``."""
        ...


class SharedValues(Protocol):
    """Small values every worker shares, with an expiry (a channel's access token)."""

    def get_value(self, key: str, now: float) -> str | None: ...
    def set_value(self, key: str, value: str, expires_at: float | None = None) -> None: ...


class Limits(Protocol):
    """Rate limits every worker shares (guesses of an order's phone digits)."""

    def hit(self, key: str, at: float, window_seconds: float) -> int:
        """Record one hit on key at `at`; return how many hits key has had within the last
        window_seconds (this one included). Atomic across workers."""
        ...


class Accounts(Protocol):
    """The web desk's accounts, their wrong-password count (lock-out) and signed-in sessions."""

    def save_account(self, account: Account) -> None: ...
    def account(self, name: str) -> Account | None: ...
    def accounts(self) -> list[Account]: ...
    def record_failure(self, name: str, lock_after: int, locked_until: float) -> int:
        """One more wrong password in a row for ``name`` (atomic across workers); the account is
        locked until ``locked_until`` when the count reaches ``lock_after``. Returns the count."""
        ...

    def reset_failures(self, name: str) -> None: ...
    def add_session(self, session: DeskSession) -> None: ...
    def session(self, token_hash: str, now: float) -> DeskSession | None: ...
    def drop_session(self, token_hash: str) -> None: ...
    def drop_sessions_of(self, name: str) -> None: ...


class Leases(Protocol):
    """A job that one worker at a time runs (escalation): a lease, renewed by its holder."""

    def take_lease(self, name: str, holder: str, now: float, seconds: float) -> bool: ...


class StateStore(
    Conversations,
    Turns,
    Tickets,
    Feedback,
    QuestionLog,
    Learning,
    Claims,
    Answers,
    SharedValues,
    Limits,
    Leases,
    Accounts,
    Protocol,
):
    """Every role: what a backend implements."""

    def close(self) -> None: ...
