"""The conversation state: conversations and their transcripts, handoff tickets, feedback, the
question log, claims on retried deliveries, shared values, rate limits, customers' picks and the
web desk's accounts.

- :mod:`~bots.store.records`: what is kept (plain dataclasses);
- :mod:`~bots.store.protocols`: the interface, one protocol per role;
- :mod:`~bots.store.sqlite`: the embedded backend, one SQLite file.
"""

from __future__ import annotations

from pathlib import Path

from bots.store.protocols import (
    Accounts,
    Claims,
    Conversations,
    Feedback,
    Learning,
    Limits,
    QuestionLog,
    SharedValues,
    StateStore,
    Tickets,
)
from bots.store.records import (
    Account,
    Conversation,
    DeskSession,
    FeedbackEvent,
    LoggedQuestion,
    Pick,
    Ticket,
    TicketMessage,
    new_ticket_id,
)
from bots.store.sqlite import SqliteStateStore


def open_store(path: str | Path) -> StateStore:
    """The configured state store (``[engine] state_path``)."""
    return SqliteStateStore(path)


__all__ = [
    "Account",
    "Accounts",
    "Claims",
    "Conversation",
    "Conversations",
    "DeskSession",
    "Feedback",
    "Learning",
    "Limits",
    "FeedbackEvent",
    "LoggedQuestion",
    "Pick",
    "QuestionLog",
    "SharedValues",
    "SqliteStateStore",
    "StateStore",
    "Ticket",
    "TicketMessage",
    "Tickets",
    "new_ticket_id",
    "open_store",
]
