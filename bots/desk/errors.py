"""What can go wrong when an agent acts on a ticket; the server maps each to a status code."""

from __future__ import annotations


class TicketError(LookupError):
    """An agent's action on a ticket cannot be done."""


class TicketNotFound(TicketError):
    """No ticket has this id (HTTP 404)."""

    def __init__(self, ticket_id: str) -> None:
        super().__init__(f"no ticket {ticket_id}")
        self.ticket_id = ticket_id


class TicketClosed(TicketError):
    """The ticket is closed: nothing more can be done on it (HTTP 409)."""

    def __init__(self, ticket_id: str) -> None:
        super().__init__(f"ticket {ticket_id} is closed")
        self.ticket_id = ticket_id
