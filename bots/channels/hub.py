"""What a channel gets from the application that runs it, so that no channel imports the server.

A channel's ``mount`` receives the :class:`ChannelHub`: the engine (customers' messages, and the
desk for tickets), the store roles a channel needs of its own (claims on retried deliveries,
shared values such as an access token), and places to register what the channel offers back: a
sender for agents' replies to its customers, a listener for new and escalated tickets, work to
run alongside the server, and what to do when it stops.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from bots.conversation import Engine
from bots.replies import Delivery, Reply
from bots.store import Claims, SharedValues, Ticket

log = logging.getLogger("kb.channels")

Sender = Callable[[str, list[Reply]], Awaitable[None]]
"""Sends replies to a customer of one channel: ``await send(user_id, replies)``."""
TicketListener = Callable[[str, Ticket], Awaitable[None]]
"""``await listener(event, ticket)`` for ``opened`` and ``escalated`` tickets."""
Loop = Callable[[], Coroutine[Any, Any, None]]


class ChannelHub:
    def __init__(self, engine: Engine, claims: Claims, values: SharedValues) -> None:
        self.engine = engine
        self.claims = claims
        self.values = values
        self.senders: dict[str, Sender] = {}
        self.listeners: list[TicketListener] = []
        self.loops: list[Loop] = []
        self.shutdown_hooks: list[Callable[[], Awaitable[None]]] = []

    @classmethod
    def for_engine(cls, engine: Engine) -> ChannelHub:
        """A hub over the engine's own state store."""
        return cls(engine, claims=engine.store, values=engine.store)

    def register_sender(self, channel: str, sender: Sender) -> None:
        """Agents' replies to ``channel``'s customers go out through ``sender``."""
        self.senders[channel] = sender

    def add_listener(self, listener: TicketListener) -> None:
        self.listeners.append(listener)

    def run_alongside(self, loop: Loop) -> None:
        """Run ``loop`` while the server runs (cancelled when it stops)."""
        self.loops.append(loop)

    def on_shutdown(self, hook: Callable[[], Awaitable[None]]) -> None:
        self.shutdown_hooks.append(hook)

    async def deliver(self, delivery: Delivery | None) -> bool:
        """Send a delivery through its channel. False when the channel cannot push messages."""
        if delivery is None or not delivery.replies:
            return False
        sender = self.senders.get(delivery.channel)
        if sender is None:
            return False
        await sender(delivery.user_id, delivery.replies)
        return True

    async def notify(self, event: str, ticket: Ticket) -> None:
        """Tell the ticket listeners (a failing listener is logged, never fatal)."""
        for listener in self.listeners:
            try:
                await listener(event, ticket)
            except Exception:
                log.exception("ticket listener failed on %s %s", event, ticket.id)
