"""The state store's interface, split by role: each caller depends on the roles it uses.

:class:`StateStore` is all of them together, as each backend (:mod:`bots.store.sqlite`, :mod:`bots.store.postgres`)
fills them. Every free text is masked (:func:`bots.pii.mask_text`) by the store on its way in.
"""

from __future__ import annotations

from typing import Any, Protocol

from bots.store.records import Conversation, LoggedQuestion, Ticket, TicketMessage
from kb.vocabulary import OPEN_TICKET_STATES


class Conversations(Protocol):
    """Each customer's conversation state, and the transcript of what was said."""

    def conversation(self, channel: str, user_id: str) -> Conversation: ...
    def save_conversation(self, conversation: Conversation) -> None: ...
    def add_message(self, channel: str, user_id: str, author: str, text: str, at: float) -> None: ...
    def recent_messages(self, channel: str, user_id: str, limit: int = 20) -> list[TicketMessage]: ...


class Tickets(Protocol):
    """Handoff tickets: at most one open per customer."""

    def open_ticket(self, ticket: Ticket) -> tuple[Ticket, bool]: ...
    def ticket(self, ticket_id: str) -> Ticket | None: ...
    def tickets(self, states: tuple[str, ...] = OPEN_TICKET_STATES) -> list[Ticket]: ...
    def update_ticket(self, ticket_id: str, **fields: Any) -> None: ...
    def add_ticket_message(self, ticket_id: str, author: str, text: str, at: float) -> None: ...


class Feedback(Protocol):
    """Solved / not solved after an answer."""

    def add_feedback(self, channel: str, user_id: str, entry_id: str | None, solved: bool, question: str, at: float) -> None: ...
    def feedback_by_entry(self) -> dict[str, tuple[int, int]]: ...


class QuestionLog(Protocol):
    """Every question and how it ended, de-identified: what editors read (``kb report``)."""

    def log_question(self, entry: LoggedQuestion) -> None: ...
    def questions(self, since: float = 0.0) -> list[LoggedQuestion]: ...


class Claims(Protocol):
    """A delivery retried by a channel (a WeChat MsgId) is processed once, by any worker."""

    def claim(self, key: str, at: float) -> bool: ...
    def claimed_reply(self, key: str) -> str | None: ...
    def set_claimed_reply(self, key: str, reply: str) -> None: ...
    def forget_claims(self, before: float) -> int: ...


class SharedValues(Protocol):
    """Small values every worker shares, with an expiry (a channel's access token)."""

    def get_value(self, key: str, now: float) -> str | None: ...
    def set_value(self, key: str, value: str, expires_at: float | None = None) -> None: ...


class Leases(Protocol):
    """A job that one worker at a time runs (escalation): a lease, renewed by its holder."""

    def take_lease(self, name: str, holder: str, now: float, seconds: float) -> bool: ...


class StateStore(Conversations, Tickets, Feedback, QuestionLog, Claims, SharedValues, Leases, Protocol):
    """Every role: what a backend implements."""

    def close(self) -> None: ...
