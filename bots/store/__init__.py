"""The conversation state: conversations and their transcripts, handoff tickets, feedback, the
question log, claims on retried deliveries, shared values and the web desk's accounts.

- :mod:`~bots.store.records`: what is kept (plain dataclasses);
- :mod:`~bots.store.protocols`: the interface, one protocol per role;
- :mod:`~bots.store.sqlite`: the embedded backend, one SQLite file.
"""

from __future__ import annotations

from pathlib import Path

from bots.store.protocols import Accounts, Claims, Conversations, Feedback, QuestionLog, SharedValues, StateStore, Tickets
from bots.store.records import (
    Account,
    Conversation,
    DeskSession,
    FeedbackEvent,
    LoggedQuestion,
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
    "FeedbackEvent",
    "LoggedQuestion",
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
