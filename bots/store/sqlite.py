"""The state store in one SQLite file (WAL mode, numbered schema migrations): it fills every
role of :mod:`bots.store.protocols`. Statements name their columns, so a migration that adds
one breaks nothing.

Every free text goes through :func:`bots.pii.mask_text` on its way in: no raw phone, card or ID
number, e-mail or street address is ever written.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bots.pii import mask_text
from bots.store.records import Account, Conversation, DeskSession, FeedbackEvent, LoggedQuestion, Pick, Ticket, TicketMessage
from bots.store.sql import as_stored, conversation_values, log_question_sql, log_values, shareable, take_lease_sql, ticket_values
from kb.vocabulary import OPEN_TICKET_STATES, PRIORITY_ORDER, check_channel

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
    # 2: rate limits (guesses of an order's phone digits), shared by every worker
    """
    CREATE TABLE hits (key TEXT NOT NULL, at REAL NOT NULL);
    CREATE INDEX hits_by_key ON hits (key, at);
    """,
    # 3: the web desk's accounts and signed-in sessions (issue 21)
    """
    CREATE TABLE desk_accounts (
        name TEXT PRIMARY KEY, role TEXT NOT NULL, password_hash TEXT NOT NULL,
        language TEXT NOT NULL DEFAULT 'zh', failures INTEGER NOT NULL DEFAULT 0,
        locked_until REAL NOT NULL DEFAULT 0, created_at REAL NOT NULL DEFAULT 0
    );
    CREATE TABLE desk_sessions (
        token_hash TEXT PRIMARY KEY, name TEXT NOT NULL REFERENCES desk_accounts (name) ON DELETE CASCADE,
        csrf TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL
    );
    CREATE INDEX desk_sessions_by_name ON desk_sessions (name);
    CREATE INDEX feedback_by_time ON feedback (at);
    """,
    # 4: customers' own phrasings labelled by their picks, and the editors' decisions on them
    """
    CREATE TABLE picks (
        id INTEGER PRIMARY KEY, at REAL NOT NULL, channel TEXT NOT NULL, question TEXT NOT NULL,
        entry_id TEXT NOT NULL, source TEXT NOT NULL
    );
    CREATE INDEX picks_by_time ON picks (at);
    CREATE TABLE suggestion_decisions (
        suggestion TEXT PRIMARY KEY, decision TEXT NOT NULL, at REAL NOT NULL
    );
    """,  # 5: who holds a claim, so that a retry can take over the message of a worker that died
    """
    ALTER TABLE claims ADD COLUMN holder TEXT NOT NULL DEFAULT '';
    """,
    # 6: answers shared by the workers (retriever.SharedAnswers), under a digest of the question
    """
    CREATE TABLE answers (key TEXT PRIMARY KEY, build TEXT NOT NULL, at REAL NOT NULL, answer TEXT NOT NULL);
    CREATE INDEX answers_by_time ON answers (at);
    """,
]


_BUSY_SECONDS = 10.0
"""How long a write waits for another process's write lock before it fails."""
_FIRST_PAUSE, _LONGEST_PAUSE = 0.0002, 0.005

_ADD_MESSAGE = "INSERT INTO messages (channel, user_id, at, author, text) VALUES (?, ?, ?, ?, ?)"
_LOG_QUESTION = log_question_sql(lambda name: f":{name}")


def _conversation(row: sqlite3.Row) -> Conversation:
    data = dict(row)
    data["context"] = json.loads(data["context"])
    return Conversation(**data)


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
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=_BUSY_SECONDS)
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
        """A write transaction. While another process (a second worker) holds SQLite's write lock,
        this one waits *without* its own lock, so that its other threads go on reading and
        answering; SQLite's own busy wait would hold it, and stall the whole worker."""
        deadline = time.monotonic() + _BUSY_SECONDS
        pause = _FIRST_PAUSE
        while True:
            with self._lock:
                if self._begin(deadline):
                    try:
                        yield self._db
                    except BaseException:
                        self._db.execute("ROLLBACK")
                        raise
                    self._db.execute("COMMIT")
                    return
            time.sleep(pause * random.uniform(0.5, 1.5))
            pause = min(pause * 2, _LONGEST_PAUSE)

    def _begin(self, deadline: float) -> bool:
        """BEGIN IMMEDIATE at once: False when another process holds the write lock (until ``deadline``)."""
        self._db.execute("PRAGMA busy_timeout = 0")
        try:
            self._db.execute("BEGIN IMMEDIATE")
            return True
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            return False
        finally:
            self._db.execute(f"PRAGMA busy_timeout = {int(_BUSY_SECONDS * 1000)}")

    def _query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # conversations

    def conversation(self, channel: str, user_id: str) -> Conversation:
        rows = self._query("SELECT * FROM conversations WHERE channel = ? AND user_id = ?", (channel, user_id))
        return _conversation(rows[0]) if rows else Conversation(channel, user_id)

    def save_conversation(self, conversation: Conversation) -> None:
        values = conversation_values(conversation)
        with self._transaction() as db:
            db.execute(_upsert("conversations", values, ("channel", "user_id")), values)

    def add_message(self, channel: str, user_id: str, author: str, text: str, at: float) -> None:
        check_channel(channel)
        with self._transaction() as db:
            db.execute(_ADD_MESSAGE, (channel, user_id, at, author, mask_text(text)))

    # a customer's turn: one transaction at its start, one at its end

    def begin_turn(self, channel: str, user_id: str, text: str, at: float) -> Conversation:
        check_channel(channel)
        with self._transaction() as db:
            db.execute(_ADD_MESSAGE, (channel, user_id, at, "customer", mask_text(text)))
            row = db.execute("SELECT * FROM conversations WHERE channel = ? AND user_id = ?", (channel, user_id)).fetchone()
        return _conversation(row) if row else Conversation(channel, user_id)

    def end_turn(self, conversation: Conversation, entry: LoggedQuestion, claimed: tuple[str, str] | None = None) -> None:
        values = conversation_values(conversation)
        with self._transaction() as db:
            db.execute(_upsert("conversations", values, ("channel", "user_id")), values)
            db.execute(_LOG_QUESTION, log_values(entry))
            if claimed is not None:
                db.execute("UPDATE claims SET reply = ? WHERE key = ?", (claimed[1], claimed[0]))

    def recent_messages(self, channel: str, user_id: str, limit: int = 20) -> list[TicketMessage]:
        rows = self._query(
            "SELECT at, author, text FROM messages WHERE channel = ? AND user_id = ? ORDER BY id DESC LIMIT ?",
            (channel, user_id, limit),
        )
        return [TicketMessage(**dict(r)) for r in reversed(rows)]

    # tickets

    def open_ticket(self, ticket: Ticket) -> tuple[Ticket, bool]:
        """Open ``ticket`` unless the customer has an open one: (the open ticket, created?)."""
        values = ticket_values(ticket)
        opened = as_stored(ticket, values)
        with self._transaction() as db:
            row = db.execute(
                f"SELECT id FROM tickets WHERE channel = ? AND user_id = ? AND state IN ({_marks(OPEN_TICKET_STATES)})",
                (ticket.channel, ticket.user_id, *OPEN_TICKET_STATES),
            ).fetchone()
            if row is None:
                db.execute(f"INSERT INTO tickets ({', '.join(values)}) VALUES ({_marks(values)})", tuple(values.values()))
                db.executemany(
                    "INSERT INTO ticket_messages (ticket_id, at, author, text) VALUES (?, ?, ?, ?)",
                    [(ticket.id, m.at, m.author, m.text) for m in opened.messages],
                )
        if row is not None:
            return self.ticket(row["id"]), False  # type: ignore[return-value]
        return opened, True

    def ticket(self, ticket_id: str) -> Ticket | None:
        rows = self._query("SELECT * FROM tickets WHERE id = ?", (ticket_id,))
        if not rows:
            return None
        ticket = _ticket(rows[0])
        messages = self._query("SELECT at, author, text FROM ticket_messages WHERE ticket_id = ? ORDER BY id", (ticket_id,))
        ticket.messages = [TicketMessage(**dict(m)) for m in messages]
        return ticket

    def tickets(self, states: tuple[str, ...] = OPEN_TICKET_STATES, limit: int | None = None, offset: int = 0) -> list[Ticket]:
        """Tickets in ``states``, most urgent first, then the one due soonest; ``limit`` of them
        from ``offset`` on (a page of the desk's queue), or all."""
        urgency = " ".join(f"WHEN '{p}' THEN {rank}" for rank, p in enumerate(PRIORITY_ORDER))
        rows = self._query(
            f"SELECT * FROM tickets WHERE state IN ({_marks(states)}) ORDER BY CASE priority {urgency} ELSE 9 END, due_at, id"
            + (" LIMIT ? OFFSET ?" if limit is not None else ""),
            (*states, *((limit, offset) if limit is not None else ())),
        )
        return [_ticket(r) for r in rows]

    def count_tickets(self, states: tuple[str, ...] = OPEN_TICKET_STATES) -> int:
        rows = self._query(f"SELECT COUNT(*) AS n FROM tickets WHERE state IN ({_marks(states)})", tuple(states))
        return int(rows[0]["n"])

    def first_responses(self, since: float = 0.0) -> dict[str, float]:
        rows = self._query(
            "SELECT m.ticket_id AS id, MIN(m.at) AS at FROM ticket_messages m JOIN tickets t ON t.id = m.ticket_id "
            "WHERE t.created_at >= ? AND m.author LIKE ? GROUP BY m.ticket_id",
            (since, "agent:%"),
        )
        return {r["id"]: r["at"] for r in rows}

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

    def add_pick(self, pick: Pick) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO picks (at, channel, question, entry_id, source) VALUES (?, ?, ?, ?, ?)",
                (pick.at, pick.channel, mask_text(pick.question), pick.entry_id, pick.source),
            )

    def picks(self, since: float = 0.0) -> list[Pick]:
        rows = self._query("SELECT at, channel, question, entry_id, source FROM picks WHERE at >= ? ORDER BY id", (since,))
        return [Pick(**dict(r)) for r in rows]

    def decide(self, suggestion: str, decision: str, at: float) -> None:
        with self._transaction() as db:
            values = {"suggestion": suggestion, "decision": decision, "at": at}
            db.execute(_upsert("suggestion_decisions", values, ("suggestion",)), values)

    def decisions(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self._query("SELECT suggestion, decision FROM suggestion_decisions")}

    def feedback_by_entry(self) -> dict[str, tuple[int, int]]:
        """Entry id → (solved, not solved)."""
        rows = self._query(
            "SELECT entry_id, SUM(solved), SUM(1 - solved) FROM feedback WHERE entry_id IS NOT NULL GROUP BY entry_id"
        )
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}

    def feedback_since(self, since: float = 0.0) -> list[FeedbackEvent]:
        rows = self._query("SELECT at, channel, entry_id, solved FROM feedback WHERE at >= ? ORDER BY id", (since,))
        return [FeedbackEvent(r["at"], r["channel"], r["entry_id"], bool(r["solved"])) for r in rows]

    def log_question(self, entry: LoggedQuestion) -> None:
        with self._transaction() as db:
            db.execute(_LOG_QUESTION, log_values(entry))

    def questions(self, since: float = 0.0) -> list[LoggedQuestion]:
        rows = self._query(
            "SELECT at, channel, language, question, outcome, reason, confidence, entry_id, latency_ms, build"
            " FROM question_log WHERE at >= ? ORDER BY id",
            (since,),
        )
        return [LoggedQuestion(**dict(r)) for r in rows]

    # claims (deduplication of retried deliveries) and shared values

    def claim(self, key: str, at: float, holder: str = "", reply: str | None = None) -> bool:
        """True for the first caller with ``key``, False for every retry, in any worker."""
        with self._transaction() as db:
            sql = "INSERT OR IGNORE INTO claims (key, at, holder, reply) VALUES (?, ?, ?, ?)"
            return db.execute(sql, (key, at, holder, reply)).rowcount == 1

    def claim_delivery(self, nonce: str, key: str, at: float, holder: str) -> tuple[bool, bool]:
        with self._transaction() as db:
            used = db.execute("SELECT reply FROM claims WHERE key = ?", (nonce,)).fetchone()
            if used is not None and used[0] != key:
                return False, False
            if used is None:
                db.execute("INSERT INTO claims (key, at, reply) VALUES (?, ?, ?)", (nonce, at, key))
            sql = "INSERT OR IGNORE INTO claims (key, at, holder) VALUES (?, ?, ?)"
            return True, db.execute(sql, (key, at, holder)).rowcount == 1

    def claim_holder(self, key: str) -> tuple[str, float] | None:
        rows = self._query("SELECT holder, at FROM claims WHERE key = ? AND reply IS NULL", (key,))
        return (rows[0][0], rows[0][1]) if rows else None

    def take_over(self, key: str, holder_was: str, holder: str, at: float) -> bool:
        with self._transaction() as db:
            sql = "UPDATE claims SET holder = ?, at = ? WHERE key = ? AND holder = ? AND reply IS NULL"
            return db.execute(sql, (holder, at, key, holder_was)).rowcount == 1

    def claimed_reply(self, key: str) -> str | None:
        rows = self._query("SELECT reply FROM claims WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_claimed_reply(self, key: str, reply: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE claims SET reply = ? WHERE key = ?", (reply, key))

    def forget_claims(self, before: float) -> int:
        with self._transaction() as db:
            return db.execute("DELETE FROM claims WHERE at < ?", (before,)).rowcount

    # answers shared by the workers

    def shared_answer(self, key: str) -> str | None:
        rows = self._query("SELECT answer FROM answers WHERE key = ?", (key,))
        return rows[0]["answer"] if rows else None

    def share_answer(self, key: str, build: str, question: str, answer: str) -> None:
        if not shareable(question):
            return
        with self._transaction() as db:
            db.execute(
                "INSERT INTO answers (key, build, at, answer) VALUES (?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                (key, build, time.time(), answer),
            )

    def forget_answers(self, keep_build: str, before: float) -> int:
        with self._transaction() as db:
            return db.execute("DELETE FROM answers WHERE build <> ? OR at < ?", (keep_build, before)).rowcount

    # rate limits

    def hit(self, key: str, at: float, window_seconds: float) -> int:
        """Record a hit on ``key``; the hits within the window, this one included. One
        transaction (BEGIN IMMEDIATE), so two workers never both see the count before theirs."""
        with self._transaction() as db:
            db.execute("DELETE FROM hits WHERE key = ? AND at <= ?", (key, at - window_seconds))
            db.execute("INSERT INTO hits (key, at) VALUES (?, ?)", (key, at))
            return db.execute("SELECT COUNT(*) FROM hits WHERE key = ? AND at > ?", (key, at - window_seconds)).fetchone()[0]

    def get_value(self, key: str, now: float) -> str | None:
        rows = self._query("SELECT value, expires_at FROM shared_values WHERE key = ?", (key,))
        if not rows or (rows[0]["expires_at"] is not None and rows[0]["expires_at"] <= now):
            return None
        return rows[0]["value"]

    def set_value(self, key: str, value: str, expires_at: float | None = None) -> None:
        with self._transaction() as db:
            values = {"key": key, "value": value, "expires_at": expires_at}
            db.execute(_upsert("shared_values", values, ("key",)), values)

    # the web desk's accounts and sessions

    def save_account(self, account: Account) -> None:
        with self._transaction() as db:
            values = dict(account.__dict__)
            db.execute(_upsert("desk_accounts", values, ("name",)), values)

    def account(self, name: str) -> Account | None:
        rows = self._query("SELECT * FROM desk_accounts WHERE name = ?", (name,))
        return Account(**dict(rows[0])) if rows else None

    def accounts(self) -> list[Account]:
        return [Account(**dict(r)) for r in self._query("SELECT * FROM desk_accounts ORDER BY name")]

    def record_failure(self, name: str, lock_after: int, locked_until: float) -> int:
        with self._transaction() as db:
            row = db.execute(
                "UPDATE desk_accounts SET failures = failures + 1 WHERE name = ? RETURNING failures", (name,)
            ).fetchone()
            if row is None:
                return 0
            if row[0] >= lock_after:
                db.execute("UPDATE desk_accounts SET locked_until = ?, failures = 0 WHERE name = ?", (locked_until, name))
            return int(row[0])

    def reset_failures(self, name: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE desk_accounts SET failures = 0 WHERE name = ?", (name,))

    def add_session(self, session: DeskSession) -> None:
        with self._transaction() as db:
            values = dict(session.__dict__)
            db.execute(_upsert("desk_sessions", values, ("token_hash",)), values)
            # Expired sessions go as new ones come: the table stays the size of the signed-in desk.
            db.execute("DELETE FROM desk_sessions WHERE expires_at <= ?", (session.created_at,))

    def session(self, token_hash: str, now: float) -> DeskSession | None:
        rows = self._query("SELECT * FROM desk_sessions WHERE token_hash = ? AND expires_at > ?", (token_hash, now))
        return DeskSession(**dict(rows[0])) if rows else None

    def drop_session(self, token_hash: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM desk_sessions WHERE token_hash = ?", (token_hash,))

    def drop_sessions_of(self, name: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM desk_sessions WHERE name = ?", (name,))

    def take_lease(self, name: str, holder: str, now: float, seconds: float) -> bool:
        """True when ``holder`` has the lease ``name`` until ``now + seconds``: it was free, had
        expired or was already this holder's."""
        values = {"key": f"lease:{name}", "value": holder, "expires_at": now + seconds, "now": now}
        with self._transaction() as db:
            return db.execute(take_lease_sql(lambda name: f":{name}"), values).rowcount == 1


def _marks(values: Collection[Any]) -> str:
    return ", ".join("?" * len(values))


def _upsert(table: str, values: dict[str, Any], key: tuple[str, ...]) -> str:
    """INSERT ... ON CONFLICT DO UPDATE with named columns and named parameters."""
    columns = ", ".join(values)
    params = ", ".join(f":{name}" for name in values)
    updates = ", ".join(f"{name} = excluded.{name}" for name in values if name not in key)
    return f"INSERT INTO {table} ({columns}) VALUES ({params}) ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
