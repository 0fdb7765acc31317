"""The conversation state: conversations and their transcripts, handoff tickets, feedback, the
question log, claims on retried deliveries, shared values and rate limits.

- :mod:`~bots.store.records`: what is kept (plain dataclasses);
- :mod:`~bots.store.protocols`: the interface, one protocol per role;
- :mod:`~bots.store.sqlite`: the embedded backend, one SQLite file.
"""

from __future__ import annotations

from pathlib import Path

from bots.store.protocols import (
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
from bots.store.records import Conversation, LoggedQuestion, Pick, Ticket, TicketMessage, new_ticket_id
from bots.store.sqlite import SqliteStateStore


def open_store(path: str | Path) -> StateStore:
    """The configured state store (``[engine] state_path``)."""
    return SqliteStateStore(path)


__all__ = [
    "Claims",
    "Conversation",
    "Conversations",
    "Feedback",
    "Learning",
    "Limits",
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
