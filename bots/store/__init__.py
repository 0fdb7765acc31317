"""The conversation state: conversations and their transcripts, handoff tickets, feedback, the
question log, claims on retried deliveries, shared values, rate limits, customers' picks and the
web desk's accounts.

- :mod:`~bots.store.records`: what is kept (plain dataclasses);
- :mod:`~bots.store.protocols`: the interface, one protocol per role;
- :mod:`~bots.store.sqlite`: the embedded backend, one SQLite file;
- :mod:`~bots.store.postgres`: PostgreSQL, shared by several workers and machines.
"""

from __future__ import annotations

from bots.settings import EngineSettings
from bots.store.protocols import (
    Accounts,
    Answers,
    Claims,
    Conversations,
    Feedback,
    Learning,
    Leases,
    Limits,
    QuestionLog,
    SharedValues,
    StateStore,
    Tickets,
    Turns,
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


def open_store(settings: EngineSettings, migrate: bool = True) -> StateStore:
    """The configured state store: PostgreSQL when ``[engine] state_url`` is set, else the SQLite
    file ``state_path``."""
    if settings.state_url:
        # Imported here: a SQLite deployment never loads libpq.
        from bots.store.postgres import PostgresStateStore

        return PostgresStateStore(settings.state_url, settings.state_pool_size, migrate=migrate)
    return SqliteStateStore(settings.state_path)


__all__ = [
    "Account",
    "Accounts",
    "Answers",
    "Claims",
    "Conversation",
    "Conversations",
    "DeskSession",
    "Feedback",
    "Learning",
    "Limits",
    "FeedbackEvent",
    "Leases",
    "LoggedQuestion",
    "Pick",
    "QuestionLog",
    "SharedValues",
    "SqliteStateStore",
    "StateStore",
    "Ticket",
    "TicketMessage",
    "Turns",
    "Tickets",
    "new_ticket_id",
    "open_store",
]
