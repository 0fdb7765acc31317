"""What both stores share, written once: SQL with a placeholder style per database, and masking."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bots.pii import mask_text


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
