"""WeChat's customer-service sessions and the engine's tickets, kept in step.

A ``transfer_customer_service`` reply puts the customer in WeChat's own agent system; WeChat
reports an agent taking (``kf_create_session``), passing on (``kf_switch_session``) and ending
(``kf_close_session``) the session, and silently releases a session after 30 minutes without
messages. The ticket follows: taken, closed without a second goodbye (WeChat has said it).
"""

from __future__ import annotations

import logging

from bots.channels.wechat.settings import CHANNEL
from bots.conversation.engine import Engine
from bots.desk import TicketError
from bots.store import Ticket

log = logging.getLogger("kb.wechat")


def last_activity(ticket: Ticket) -> float:
    """When anyone last wrote in the ticket (an agent's action or a customer's message)."""
    return max([ticket.touched_at, *(m.at for m in ticket.messages)])


def is_idle(engine: Engine, ticket: Ticket, timeout_minutes: float) -> bool:
    return timeout_minutes > 0 and engine.clock() - last_activity(ticket) >= timeout_minutes * 60


def release(engine: Engine, ticket: Ticket, agent: str = "") -> bool:
    """Close the ticket because WeChat ended the session; True when it was open."""
    try:
        return engine.desk.close(ticket.id, agent=agent, notify=False) is not None
    except TicketError:
        return False


def release_if_idle(engine: Engine, user_id: str, timeout_minutes: float) -> None:
    """A message from a customer whose session WeChat has released reaches us: the ticket is
    closed first, so that the bot answers instead of staying silent for an absent agent."""
    ticket = engine.open_ticket(CHANNEL, user_id)
    if ticket is not None and is_idle(engine, ticket, timeout_minutes):
        release(engine, ticket)


def release_idle(engine: Engine, timeout_minutes: float) -> list[str]:
    """Close every WeChat ticket untouched for ``timeout_minutes``; their ids."""
    if timeout_minutes <= 0:
        return []
    closed = []
    for summary in engine.desk.tickets():
        if summary.channel != CHANNEL:
            continue
        ticket = engine.desk.ticket(summary.id)
        if ticket.is_open and is_idle(engine, ticket, timeout_minutes) and release(engine, ticket):
            closed.append(ticket.id)
    return closed


def session_event(engine: Engine, user_id: str, event: str, account: str) -> None:
    """``kf_create_session`` / ``kf_switch_session``: the agent has the ticket;
    ``kf_close_session``: it is closed."""
    ticket = engine.open_ticket(CHANNEL, user_id)
    if ticket is None:
        return
    try:
        if event == "kf_close_session":
            release(engine, ticket, account)
        elif account:
            engine.desk.take(ticket.id, account)
    except TicketError:
        log.info("ticket %s changed while handling %s", ticket.id, event)
