"""What an order backend is: look up one order by its number."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

STATUSES = ("unpaid", "paid", "shipped", "in_transit", "out_for_delivery", "delivered", "cancelled", "returning")


@dataclass
class Order:
    number: str
    status: str
    """One of :data:`STATUSES`."""
    placed_at: str
    items: list[str] = field(default_factory=list)
    carrier: str | None = None
    tracking_number: str | None = None
    eta: str | None = None
    """Expected delivery date (ISO), when the carrier gives one."""
    last_event: str | None = None
    """The carrier's latest scan, e.g. "2026-11-21 18:02 Arrived at Shanghai hub"."""
    last_event_at: str | None = None
    phone: str = ""
    address: dict[str, str] = field(default_factory=dict)
    """``province``, ``city``, ``district``, ``street``: only the region is ever shown."""
    customers: list[str] = field(default_factory=list)
    """Bound customers, as ``channel:user_id``: they may see the order without the phone check."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Order:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def belongs_to(self, channel: str, user_id: str) -> bool:
        return f"{channel}:{user_id}" in self.customers

    def phone_ends_with(self, last_four: str) -> bool:
        digits = "".join(ch for ch in self.phone if ch.isdigit())
        return len(last_four) == 4 and digits.endswith(last_four)


class OrderBackendError(RuntimeError):
    """The order system did not answer (down, slow, or an answer that makes no sense)."""


class OrderBackend(Protocol):
    def get(self, number: str) -> Order | None:
        """The order, None when there is no such order; :class:`OrderBackendError` on failure."""
        ...
