"""The desk: handoff tickets from the moment the bot opens one to the moment an agent closes it.

Opening a ticket gives it its kind, priority and due time (:mod:`bots.desk.sla`); agents take,
reply to and close it; a ticket untouched for ``[engine] escalate_after_hours`` escalates. The
customer's conversation follows the ticket's state, so the bot stays quiet while an agent has
it and takes over again when the ticket closes (docs/service-rules.md#handoff).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bots.desk.errors import TicketClosed, TicketNotFound
from bots.desk.locks import CustomerLocks
from bots.desk.sla import Sla, classify, due_time
from bots.replies import Delivery, Reply, say
from bots.settings import EngineSettings
from bots.store import Conversation, StateStore, Ticket, new_ticket_id
from kb.vocabulary import OPEN_TICKET_STATES, ConversationState, Priority, ReplyKind, TicketState

ESCALATION_LEASE_SECONDS = 180.0
"""How long the worker that checked for overdue tickets keeps the job: it renews it every check
(every minute); when it stops, another worker takes over after this long."""


@dataclass
class Handoff:
    """A ticket the bot asked for: the customer's open ticket, and what the customer is told."""

    ticket: Ticket
    created: bool
    """False when the customer already had an open ticket (a retried handoff opens no second)."""
    sla: Sla
    opened: datetime
    due: datetime


class Desk:
    """Tickets and the agents' actions on them. Thread-safe."""

    def __init__(
        self,
        store: StateStore,
        settings: EngineSettings,
        locks: CustomerLocks | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings = settings
        self.locks = locks or CustomerLocks()
        self.clock = clock
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        """Who this desk is when it takes a lease: unique per worker process, on any machine."""

    # the bot's side

    def open(self, conversation: Conversation, reason: str, message: str, candidates: list[dict[str, Any]]) -> Handoff:
        """Open a ticket for the customer, or find the open one. The conversation (the caller
        holds the customer's lock and saves it) now follows the ticket."""
        now = self.clock()
        sla = classify(reason, message)
        opened = datetime.fromtimestamp(now, self.settings.zone)
        due = due_time(self.settings, sla, opened)
        ticket = Ticket(
            id=new_ticket_id(),
            channel=conversation.channel,
            user_id=conversation.user_id,
            state=TicketState.WAITING,
            reason=reason,
            kind=sla.kind,
            priority=sla.priority,
            language=conversation.language,
            created_at=now,
            due_at=due.timestamp(),
            touched_at=now,
            candidates=candidates,
            messages=self.store.recent_messages(conversation.channel, conversation.user_id),
        )
        ticket, created = self.store.open_ticket(ticket)
        conversation.state, conversation.ticket_id = ticket.state, ticket.id
        return Handoff(ticket, created, sla, opened, due)

    def open_ticket_of(self, conversation: Conversation) -> Ticket | None:
        """The customer's open ticket, if the conversation has one."""
        if not conversation.with_agent or not conversation.ticket_id:
            return None
        ticket = self.store.ticket(conversation.ticket_id)
        return ticket if ticket is not None and ticket.is_open else None

    def is_idle(self, ticket: Ticket, minutes: float) -> bool:
        """Nobody (agent or customer) has written in the ticket for ``minutes``; never when 0."""
        last = max([ticket.touched_at, *(m.at for m in ticket.messages)])
        return minutes > 0 and self.clock() - last >= minutes * 60

    def release(self, ticket: Ticket, agent: str = "") -> bool:
        """Close the ticket because the channel ended the agent's session itself (WeChat does
        after 30 quiet minutes, and tells the customer): no goodbye. True when it was open."""
        try:
            return self.close(ticket.id, agent=agent, notify=False) is not None
        except TicketNotFound:
            return False

    def note(self, ticket_id: str, author: str, text: str) -> None:
        """Add to the ticket's transcript (``customer``, ``bot``, ``system``)."""
        self.store.add_ticket_message(ticket_id, author, text, self.clock())

    # the agents' side

    def tickets(self, states: tuple[str, ...] = OPEN_TICKET_STATES, limit: int | None = None, offset: int = 0) -> list[Ticket]:
        """Tickets, most urgent first (``limit`` of them from ``offset`` on, or all)."""
        return self.store.tickets(states, limit, offset)

    def count(self, states: tuple[str, ...] = OPEN_TICKET_STATES) -> int:
        return self.store.count_tickets(states)

    def ticket(self, ticket_id: str) -> Ticket:
        ticket = self.store.ticket(ticket_id)
        if ticket is None:
            raise TicketNotFound(ticket_id)
        return ticket

    def _open_ticket(self, ticket_id: str) -> Ticket:
        ticket = self.ticket(ticket_id)
        if not ticket.is_open:
            raise TicketClosed(ticket_id)
        return ticket

    def take(self, ticket_id: str, agent: str) -> Ticket:
        """An agent takes the ticket (waiting → human). Taking it again changes nothing."""
        ticket = self._open_ticket(ticket_id)
        if ticket.state == TicketState.WAITING or ticket.agent != agent:
            self.store.update_ticket(ticket_id, state=TicketState.HUMAN, agent=agent, touched_at=self.clock())
            self._set_conversation(ticket, ConversationState.HUMAN, ticket.id)
        return self.ticket(ticket_id)

    def reply(self, ticket_id: str, agent: str, text: str) -> Delivery:
        """An agent's words for the customer; the channel sends the delivery."""
        ticket = self._open_ticket(ticket_id)
        if ticket.state == TicketState.WAITING or not ticket.agent:
            ticket = self.take(ticket_id, agent)
        now = self.clock()
        self.store.add_ticket_message(ticket_id, f"agent:{agent}", text, now)
        self.store.add_message(ticket.channel, ticket.user_id, f"agent:{agent}", text, now)
        self.store.update_ticket(ticket_id, touched_at=now)
        return Delivery(ticket.channel, ticket.user_id, [Reply(ReplyKind.AGENT, ticket.language, text)], self.ticket(ticket_id))

    def close(self, ticket_id: str, agent: str = "", notify: bool = True) -> Delivery | None:
        """End the ticket; the bot takes the conversation back. Closing twice changes nothing.

        ``notify=False`` when the channel ended the session itself (WeChat releases it after 30
        minutes): the customer is not told again."""
        ticket = self.ticket(ticket_id)
        if not ticket.is_open:
            return None
        now = self.clock()
        self.store.update_ticket(ticket_id, state=TicketState.CLOSED, closed_at=now, touched_at=now)
        self.store.add_ticket_message(ticket_id, f"agent:{agent}" if agent else "system", "closed", now)
        self._set_conversation(ticket, ConversationState.BOT, None)
        replies = [Reply(ReplyKind.CLOSED, ticket.language, say(ticket.language, "closed"))] if notify else []
        return Delivery(ticket.channel, ticket.user_id, replies, self.ticket(ticket_id))

    def escalate_overdue(self) -> list[Ticket]:
        """Tickets untouched for ``escalate_after_hours``: escalated (urgent), returned to notify.
        One worker at a time does it (a lease in the store), so a ticket is escalated, and its
        agents notified, once; the others return nothing."""
        now = self.clock()
        if not self.store.take_lease("escalation", self.holder, now, ESCALATION_LEASE_SECONDS):
            return []
        hours = self.settings.escalate_after_hours
        limit = now - hours * 3600
        escalated = []
        for ticket in self.store.tickets():
            if ticket.escalated_at is None and ticket.touched_at <= limit:
                self.store.update_ticket(ticket.id, escalated_at=now, priority=Priority.URGENT)
                self.store.add_ticket_message(ticket.id, "system", f"escalated: untouched for {hours:g} hours", now)
                escalated.append(self.ticket(ticket.id))
        return escalated

    def _set_conversation(self, ticket: Ticket, state: ConversationState, ticket_id: str | None) -> None:
        with self.locks(ticket.channel, ticket.user_id):
            conversation = self.store.conversation(ticket.channel, ticket.user_id)
            conversation.state, conversation.ticket_id = state, ticket_id
            if state == ConversationState.BOT:
                conversation.awaiting = None
            self.store.save_conversation(conversation)
