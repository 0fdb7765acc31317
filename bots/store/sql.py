"""What both stores share, written once: SQL with a placeholder style per database, and masking."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bots.pii import mask_text
from bots.store.records import Conversation, LoggedQuestion, Ticket, TicketMessage
from kb.vocabulary import check_channel


def take_lease_sql(named: Callable[[str], str]) -> str:
    """Take the lease in ``shared_values`` when it is free, expired or already the holder's:
    one statement, so of two workers asking at once exactly one changes a row. Parameters:
    key, value (the holder), expires_at, now; ``named`` spells a named parameter."""
    return (
        "INSERT INTO shared_values (key, value, expires_at)"
        f" VALUES ({named('key')}, {named('value')}, {named('expires_at')})"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at"
        " WHERE shared_values.value = excluded.value OR shared_values.expires_at IS NULL"
        f" OR shared_values.expires_at <= {named('now')}"
    )


def masked(value: Any) -> Any:
    """Every text inside ``value`` masked; numbers and the structure as they are (masking the
    JSON as one text would take a long number for a card and break the JSON)."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {key: masked(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [masked(item) for item in value]
    return value


def conversation_values(conversation: Conversation) -> dict[str, Any]:
    """A conversation's row, its context masked (the channel checked: a closed set)."""
    c = conversation
    check_channel(c.channel)
    return {
        "channel": c.channel, "user_id": c.user_id, "state": c.state, "ticket_id": c.ticket_id,
        "language": c.language, "awaiting": c.awaiting,
        "context": json.dumps(masked(c.context), ensure_ascii=False), "clarify_count": c.clarify_count,
        "failed_count": c.failed_count, "last_entry_id": c.last_entry_id, "updated_at": c.updated_at,
    }  # fmt: skip


_LOG_COLUMNS = ("at", "channel", "language", "question", "outcome", "reason", "confidence", "entry_id", "latency_ms", "build")


def ticket_values(ticket: Ticket) -> dict[str, Any]:
    """A new ticket's row (its messages go to their own table)."""
    t = ticket
    check_channel(t.channel)
    return {
        "id": t.id, "channel": t.channel, "user_id": t.user_id, "state": str(t.state), "reason": str(t.reason),
        "kind": str(t.kind), "priority": str(t.priority), "language": t.language, "created_at": t.created_at,
        "due_at": t.due_at, "touched_at": t.touched_at, "candidates": json.dumps(t.candidates, ensure_ascii=False),
    }  # fmt: skip


def as_stored(ticket: Ticket, row: dict[str, Any], text: Callable[[str], str] = mask_text) -> Ticket:
    """A ticket just opened (``row``: its :func:`ticket_values`) as reading it back gives it
    (names as plain text, messages as ``text`` stores them: masked), so that opening one takes no
    second read."""
    return replace(
        ticket,
        state=row["state"],
        reason=row["reason"],
        kind=row["kind"],
        priority=row["priority"],
        candidates=json.loads(row["candidates"]),
        messages=[TicketMessage(m.at, str(m.author), text(m.text)) for m in ticket.messages],
    )


def log_question_sql(named: Callable[[str], str]) -> str:
    """INSERT of a :func:`log_values` row into the question log; ``named`` spells a named parameter."""
    return f"INSERT INTO question_log ({', '.join(_LOG_COLUMNS)}) VALUES ({', '.join(named('q_' + c) for c in _LOG_COLUMNS)})"


def log_values(entry: LoggedQuestion) -> dict[str, Any]:
    """A logged question's row (its text masked), named ``q_<column>`` so that it can share a
    statement's parameters with a conversation's."""
    row = {**vars(entry), "question": mask_text(entry.question)}
    return {f"q_{column}": row[column] for column in _LOG_COLUMNS}


def shareable(question: str) -> bool:
    """Whether workers may share the answer to ``question``: not when it carries personal data.
    Only a digest of the question would be kept, but a digest of a short text with a phone number
    in it can be found by trying numbers."""
    return mask_text(question) == question
