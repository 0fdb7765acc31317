"""The conversation state store: conversations, handoff tickets, feedback, the question log,
deduplication records and shared values (a channel's access token).

:class:`StateStore` is the interface the engine and the channels use; :class:`SqliteStateStore`
fills it (a file, WAL mode, schema migrations). A PostgreSQL store would fill the same interface.

Every free text goes through :func:`bots.pii.mask_text` on its way in: no raw phone, card or ID
number, e-mail or street address is ever written.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bots.pii import mask_text

OPEN_STATES = ("waiting", "human")


@dataclass
class Conversation:
    """One customer on one channel. ``state`` is ``bot`` or the open ticket's state."""

    channel: str
    user_id: str
    state: str = "bot"
    ticket_id: str | None = None
    language: str = "zh"
    awaiting: str | None = None
    """What the bot asked for: ``feedback``, ``clarify``, ``order_number``, ``phone_last4``."""
    context: dict[str, Any] = field(default_factory=dict)
    clarify_count: int = 0
    failed_count: int = 0
    last_entry_id: str | None = None
    updated_at: float = 0.0


@dataclass
class TicketMessage:
    at: float
    author: str
    """``customer``, ``bot`` or ``agent:<name>``."""
    text: str


@dataclass
class Ticket:
    id: str
    channel: str
    user_id: str
    state: str
    reason: str
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
        return self.state in OPEN_STATES

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
    """``answer``, ``clarify``, ``handoff``, ``order``, ``silent`` (with an agent), ``invalid``."""
    reason: str | None = None
    confidence: float | None = None
    entry_id: str | None = None
    latency_ms: float | None = None
    build: str | None = None


class StateStore(Protocol):
    def conversation(self, channel: str, user_id: str) -> Conversation: ...
    def save_conversation(self, conversation: Conversation) -> None: ...
    def add_message(self, channel: str, user_id: str, author: str, text: str, at: float) -> None: ...
    def recent_messages(self, channel: str, user_id: str, limit: int = 20) -> list[TicketMessage]: ...
    def open_ticket(self, ticket: Ticket) -> tuple[Ticket, bool]: ...
    def ticket(self, ticket_id: str) -> Ticket | None: ...
    def tickets(self, states: tuple[str, ...] = OPEN_STATES) -> list[Ticket]: ...
    def update_ticket(self, ticket_id: str, **fields: Any) -> None: ...
    def add_ticket_message(self, ticket_id: str, author: str, text: str, at: float) -> None: ...
    def add_feedback(self, channel: str, user_id: str, entry_id: str | None, solved: bool, question: str, at: float) -> None: ...
    def log_question(self, entry: LoggedQuestion) -> None: ...
    def questions(self, since: float = 0.0) -> list[LoggedQuestion]: ...
    def feedback_by_entry(self) -> dict[str, tuple[int, int]]: ...
    def claim(self, key: str, at: float) -> bool: ...
    def claimed_reply(self, key: str) -> str | None: ...
    def set_claimed_reply(self, key: str, reply: str) -> None: ...
    def get_value(self, key: str, now: float) -> str | None: ...
    def set_value(self, key: str, value: str, expires_at: float | None = None) -> None: ...


MIGRATIONS: list[str] = [
    # 1: the first schema
    """
    CREATE TABLE conversations (
        channel TEXT NOT NULL, user_id TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'bot',
        ticket_id TEXT, language TEXT NOT NULL DEFAULT 'zh', awaiting TEXT,
        context TEXT NOT NULL DEFAULT '{}', clarify_count INTEGER NOT NULL DEFAULT 0,
        failed_count INTEGER NOT NULL DEFAULT 0, last_entry_id TEXT, updated_at REAL NOT NULL DEFAULT 0,
        PRIMARY KEY (channel, user_id)
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY, channel TEXT NOT NULL, user_id TEXT NOT NULL,
        at REAL NOT NULL, author TEXT NOT NULL, text TEXT NOT NULL
    );
    CREATE INDEX messages_by_user ON messages (channel, user_id, id);
    CREATE TABLE tickets (
        id TEXT PRIMARY KEY, channel TEXT NOT NULL, user_id TEXT NOT NULL, state TEXT NOT NULL,
        reason TEXT NOT NULL, kind TEXT NOT NULL, priority TEXT NOT NULL, language TEXT NOT NULL,
        created_at REAL NOT NULL, due_at REAL NOT NULL, touched_at REAL NOT NULL,
        escalated_at REAL, agent TEXT, closed_at REAL, candidates TEXT NOT NULL DEFAULT '[]'
    );
    -- One open ticket per customer: a retried handoff, from any worker, finds the first one.
    CREATE UNIQUE INDEX one_open_ticket ON tickets (channel, user_id) WHERE state IN ('waiting', 'human');
    CREATE TABLE ticket_messages (
        id INTEGER PRIMARY KEY, ticket_id TEXT NOT NULL REFERENCES tickets (id),
        at REAL NOT NULL, author TEXT NOT NULL, text TEXT NOT NULL
    );
    CREATE INDEX ticket_messages_by_ticket ON ticket_messages (ticket_id, id);
    CREATE TABLE feedback (
        id INTEGER PRIMARY KEY, at REAL NOT NULL, channel TEXT NOT NULL, user_id TEXT NOT NULL,
        entry_id TEXT, solved INTEGER NOT NULL, question TEXT NOT NULL
    );
    CREATE TABLE question_log (
        id INTEGER PRIMARY KEY, at REAL NOT NULL, channel TEXT NOT NULL, language TEXT NOT NULL,
        question TEXT NOT NULL, outcome TEXT NOT NULL, reason TEXT, confidence REAL,
        entry_id TEXT, latency_ms REAL, build TEXT
    );
    CREATE INDEX question_log_by_time ON question_log (at);
    CREATE TABLE claims (key TEXT PRIMARY KEY, at REAL NOT NULL, reply TEXT);
    CREATE TABLE shared_values (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at REAL);
    """,
]


def _ticket(row: sqlite3.Row) -> Ticket:
    data = dict(row)
    data["candidates"] = json.loads(data["candidates"])
    return Ticket(**data)


class SqliteStateStore:
    """:class:`StateStore` in one SQLite file. Safe to share between threads and processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def _migrate(self) -> None:
        with self._transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";\n"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # conversations

    def conversation(self, channel: str, user_id: str) -> Conversation:
        rows = self._query("SELECT * FROM conversations WHERE channel = ? AND user_id = ?", (channel, user_id))
        if not rows:
            return Conversation(channel, user_id)
        data = dict(rows[0])
        data["context"] = json.loads(data["context"])
        return Conversation(**data)

    def save_conversation(self, conversation: Conversation) -> None:
        c = conversation
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO conversations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    c.channel, c.user_id, c.state, c.ticket_id, c.language, c.awaiting,
                    mask_text(json.dumps(c.context, ensure_ascii=False)), c.clarify_count, c.failed_count,
                    c.last_entry_id, c.updated_at,
                ),
            )  # fmt: skip

    def add_message(self, channel: str, user_id: str, author: str, text: str, at: float) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO messages (channel, user_id, at, author, text) VALUES (?, ?, ?, ?, ?)",
                (channel, user_id, at, author, mask_text(text)),
            )

    def recent_messages(self, channel: str, user_id: str, limit: int = 20) -> list[TicketMessage]:
        rows = self._query(
            "SELECT at, author, text FROM messages WHERE channel = ? AND user_id = ? ORDER BY id DESC LIMIT ?",
            (channel, user_id, limit),
        )
        return [TicketMessage(**dict(r)) for r in reversed(rows)]

    # tickets

    def open_ticket(self, ticket: Ticket) -> tuple[Ticket, bool]:
        """Open ``ticket`` unless the customer has an open one: (the open ticket, created?)."""
        t = ticket
        with self._transaction() as db:
            row = db.execute(
                "SELECT * FROM tickets WHERE channel = ? AND user_id = ? AND state IN ('waiting', 'human')",
                (t.channel, t.user_id),
            ).fetchone()
            if row is not None:
                return _ticket(row), False
            db.execute(
                "INSERT INTO tickets (id, channel, user_id, state, reason, kind, priority, language, created_at, due_at,"
                " touched_at, candidates) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    t.id, t.channel, t.user_id, t.state, t.reason, t.kind, t.priority, t.language,
                    t.created_at, t.due_at, t.touched_at, json.dumps(t.candidates, ensure_ascii=False),
                ),
            )  # fmt: skip
            for message in t.messages:
                db.execute(
                    "INSERT INTO ticket_messages (ticket_id, at, author, text) VALUES (?, ?, ?, ?)",
                    (t.id, message.at, message.author, mask_text(message.text)),
                )
        return self.ticket(t.id), True  # type: ignore[return-value]

    def ticket(self, ticket_id: str) -> Ticket | None:
        rows = self._query("SELECT * FROM tickets WHERE id = ?", (ticket_id,))
        if not rows:
            return None
        ticket = _ticket(rows[0])
        messages = self._query("SELECT at, author, text FROM ticket_messages WHERE ticket_id = ? ORDER BY id", (ticket_id,))
        ticket.messages = [TicketMessage(**dict(m)) for m in messages]
        return ticket

    def tickets(self, states: tuple[str, ...] = OPEN_STATES) -> list[Ticket]:
        marks = ", ".join("?" * len(states))
        rows = self._query(
            f"SELECT * FROM tickets WHERE state IN ({marks}) ORDER BY "
            "CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END, due_at",
            states,
        )
        return [_ticket(r) for r in rows]

    def update_ticket(self, ticket_id: str, **fields: Any) -> None:
        allowed = {"state", "agent", "touched_at", "escalated_at", "closed_at", "priority", "due_at"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"cannot update ticket fields {sorted(unknown)}")
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self._transaction() as db:
            db.execute(f"UPDATE tickets SET {assignments} WHERE id = ?", (*fields.values(), ticket_id))

    def add_ticket_message(self, ticket_id: str, author: str, text: str, at: float) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO ticket_messages (ticket_id, at, author, text) VALUES (?, ?, ?, ?)",
                (ticket_id, at, author, mask_text(text)),
            )

    # feedback and the question log

    def add_feedback(self, channel: str, user_id: str, entry_id: str | None, solved: bool, question: str, at: float) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO feedback (at, channel, user_id, entry_id, solved, question) VALUES (?, ?, ?, ?, ?, ?)",
                (at, channel, user_id, entry_id, int(solved), mask_text(question)),
            )

    def feedback_by_entry(self) -> dict[str, tuple[int, int]]:
        """Entry id → (solved, not solved)."""
        rows = self._query(
            "SELECT entry_id, SUM(solved), SUM(1 - solved) FROM feedback WHERE entry_id IS NOT NULL GROUP BY entry_id"
        )
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}

    def log_question(self, entry: LoggedQuestion) -> None:
        e = entry
        with self._transaction() as db:
            db.execute(
                "INSERT INTO question_log (at, channel, language, question, outcome, reason, confidence, entry_id,"
                " latency_ms, build) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    e.at, e.channel, e.language, mask_text(e.question), e.outcome, e.reason, e.confidence,
                    e.entry_id, e.latency_ms, e.build,
                ),
            )  # fmt: skip

    def questions(self, since: float = 0.0) -> list[LoggedQuestion]:
        rows = self._query(
            "SELECT at, channel, language, question, outcome, reason, confidence, entry_id, latency_ms, build"
            " FROM question_log WHERE at >= ? ORDER BY id",
            (since,),
        )
        return [LoggedQuestion(**dict(r)) for r in rows]

    # claims (deduplication of retried deliveries) and shared values

    def claim(self, key: str, at: float) -> bool:
        """True for the first caller with ``key``, False for every retry, in any worker."""
        with self._transaction() as db:
            cursor = db.execute("INSERT OR IGNORE INTO claims (key, at) VALUES (?, ?)", (key, at))
            return cursor.rowcount == 1

    def claimed_reply(self, key: str) -> str | None:
        rows = self._query("SELECT reply FROM claims WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_claimed_reply(self, key: str, reply: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE claims SET reply = ? WHERE key = ?", (reply, key))

    def forget_claims(self, before: float) -> int:
        with self._transaction() as db:
            return db.execute("DELETE FROM claims WHERE at < ?", (before,)).rowcount

    def get_value(self, key: str, now: float) -> str | None:
        rows = self._query("SELECT value, expires_at FROM shared_values WHERE key = ?", (key,))
        if not rows or (rows[0]["expires_at"] is not None and rows[0]["expires_at"] <= now):
            return None
        return rows[0]["value"]

    def set_value(self, key: str, value: str, expires_at: float | None = None) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO shared_values VALUES (?, ?, ?)", (key, value, expires_at))


def new_ticket_id() -> str:
    return "T" + secrets.token_hex(4).upper()
