"""Handoff to people: when a conversation goes to a person (:mod:`~bots.desk.triggers`), what
the ticket is and when it is due (:mod:`~bots.desk.sla`), and the agents' actions on tickets
(:mod:`~bots.desk.tickets`)."""

from bots.desk.errors import TicketClosed, TicketError, TicketNotFound
from bots.desk.locks import CustomerLocks
from bots.desk.tickets import Desk, Handoff
from bots.desk.triggers import HandoffTriggers

__all__ = ["CustomerLocks", "Desk", "Handoff", "HandoffTriggers", "TicketClosed", "TicketError", "TicketNotFound"]
