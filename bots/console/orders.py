"""The order card of a ticket page: the last order number the conversation mentions, looked up
and shown exactly as the engine answers a customer (phone masked, region only), so an agent sees
no more personal data than the bot says."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from bots.orders import OrderBackend, OrderBackendError, order_steps
from bots.orders.lookup import read_order_question
from bots.store import Ticket
from kb.model import Steps

log = logging.getLogger("kb.desk")


@dataclass(frozen=True)
class OrderCard:
    number: str
    steps: Steps | None
    """The engine's three steps for the order; None when there is no such order or the system is down."""
    down: bool = False


def mentioned_order(ticket: Ticket, number_pattern: re.Pattern[str]) -> str | None:
    """The order number the conversation mentions last (the customer's or the bot's words)."""
    for message in reversed(ticket.messages):
        number = read_order_question(message.text, number_pattern).number
        if number:
            return number
    return None


def order_card(ticket: Ticket, orders: OrderBackend, number_pattern: re.Pattern[str]) -> OrderCard | None:
    number = mentioned_order(ticket, number_pattern)
    if number is None:
        return None
    try:
        order = orders.get(number)
    except OrderBackendError:
        log.warning("desk: the order system did not answer for ticket %s", ticket.id)
        return OrderCard(number, None, down=True)
    return OrderCard(number, order_steps(order, ticket.language) if order else None)
