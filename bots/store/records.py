"""What the state store keeps: a customer's conversation, a handoff ticket and its transcript,
and a logged question. Plain dataclasses, the same whichever store keeps them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from kb.vocabulary import OPEN_TICKET_STATES, Awaiting, ConversationState, TicketState


@dataclass
class Conversation:
    """One customer on one channel. ``state`` is ``bot`` or the open ticket's state."""

    channel: str
    user_id: str
    state: str = ConversationState.BOT
    ticket_id: str | None = None
    language: str = "zh"
    awaiting: Awaiting | str | None = None
    """What the bot asked for (:class:`~kb.vocabulary.Awaiting`)."""
    context: dict[str, Any] = field(default_factory=dict)
    clarify_count: int = 0
    failed_count: int = 0
    last_entry_id: str | None = None
    updated_at: float = 0.0

    @property
    def with_agent(self) -> bool:
        """A ticket is open: an agent has (or is about to have) the conversation."""
        return self.state in OPEN_TICKET_STATES


@dataclass
class TicketMessage:
    at: float
    author: str
    """``customer``, ``bot``, ``system`` or ``agent:<name>``."""
    text: str


@dataclass
class Ticket:
    id: str
    channel: str
    user_id: str
    state: str
    """A :class:`~kb.vocabulary.TicketState`."""
    reason: str
    """A :class:`~kb.vocabulary.HandoffReason`."""
    kind: str
    priority: str
    language: str
    created_at: float
    due_at: float
    touched_at: float
    escalated_at: float | None = None
    agent: str | None = None
    closed_at: float | None = None
    candidates: list[dict[str, Any]] = field(default_factory=list)
    messages: list[TicketMessage] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_TICKET_STATES

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["messages"] = [m.__dict__ for m in self.messages]
        return data


@dataclass
class LoggedQuestion:
    at: float
    channel: str
    language: str
    question: str
    outcome: str
    """A :class:`~kb.vocabulary.Outcome`."""
    reason: str | None = None
    confidence: float | None = None
    entry_id: str | None = None
    latency_ms: float | None = None
    build: str | None = None


@dataclass
class Pick:
    """A customer labelled their own words with an entry: picked it from a menu, or said an
    unsure answer solved it. What ``kb suggest`` proposes as alternate phrasings."""

    at: float
    channel: str
    question: str
    entry_id: str
    source: str
    """``menu`` or ``solved``."""


@dataclass
class FeedbackEvent:
    """One "solved" / "not solved" press, for the service figures per day and channel."""

    at: float
    channel: str
    entry_id: str | None
    solved: bool


@dataclass
class Account:
    """Someone who signs in to the desk (``kb desk add-user``). Only the password's hash is kept."""

    name: str
    role: str
    """A :class:`~kb.vocabulary.DeskRole`."""
    password_hash: str
    language: str = "zh"
    failures: int = 0
    """Wrong passwords in a row; reset by a right one."""
    locked_until: float = 0.0
    created_at: float = 0.0


@dataclass
class DeskSession:
    """A signed-in browser. The cookie holds a random token; the store keeps its SHA-256 only."""

    token_hash: str
    name: str
    csrf: str
    """The token every form and POST of this session must carry."""
    created_at: float
    expires_at: float


def new_ticket_id() -> str:
    return "T" + secrets.token_hex(4).upper()


__all__ = [
    "Account",
    "Conversation",
    "DeskSession",
    "FeedbackEvent",
    "LoggedQuestion",
    "Pick",
    "Ticket",
    "TicketMessage",
    "TicketState",
    "new_ticket_id",
]
