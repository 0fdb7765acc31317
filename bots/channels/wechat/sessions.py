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

log = logging.getLogger("kb.wechat")


def release_if_idle(engine: Engine, user_id: str, timeout_minutes: float) -> None:
    """A message from a customer whose session WeChat has released reaches us: the ticket is
    closed first, so that the bot answers instead of staying silent for an absent agent. (A text
    message does this within its turn: ``Engine.handle(..., release_after_minutes=)``.)"""
    ticket = engine.open_ticket(CHANNEL, user_id)
    if ticket is not None and engine.desk.is_idle(ticket, timeout_minutes):
        engine.desk.release(ticket)


def release_idle(engine: Engine, timeout_minutes: float) -> list[str]:
    """Close every WeChat ticket untouched for ``timeout_minutes``; their ids."""
    if timeout_minutes <= 0:
        return []
    closed = []
    for summary in engine.desk.tickets():
        if summary.channel != CHANNEL:
            continue
        ticket = engine.desk.ticket(summary.id)
        if ticket.is_open and engine.desk.is_idle(ticket, timeout_minutes) and engine.desk.release(ticket):
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
            engine.desk.release(ticket, account)
        elif account:
            engine.desk.take(ticket.id, account)
    except TicketError:
        log.info("ticket %s changed while handling %s", ticket.id, event)
