"""The product's fixed vocabulary, in one place: what the router decides, why a customer is
handed to a person, the states of a conversation and of a ticket, the kinds of replies, what the
bot is waiting for, and the channels customers write on.

Each is a :class:`~enum.StrEnum`, so a value is also the plain string that is stored, logged and
sent over JSON (``HandoffReason.MONEY == "money"``): the database and the API keep their words.
"""

from __future__ import annotations

from enum import StrEnum


class RouterAction(StrEnum):
    """What the retriever's router decides for a question."""

    ANSWER = "answer"
    """Confident: answer in three steps."""
    MENU = "menu"
    """Not sure: offer a few entries to pick from ("猜你想问", "Did you mean"), and a person."""
    HANDOFF = "handoff"
    """A person takes it (money, or nothing answers it well)."""


class HandoffReason(StrEnum):
    """Why a conversation goes to a person (docs/service-rules.md#handoff)."""

    MONEY = "money"
    LOW_CONFIDENCE = "low_confidence"
    UPSET = "upset"
    REQUESTED = "requested"
    PRIVACY = "privacy"
    ORDER_UNAVAILABLE = "order_unavailable"
    ORDER_LOCKED = "order_locked"
    """Too many guesses of an order's phone digits: the order is locked for a while, a person verifies."""


class Channel(StrEnum):
    """Where customers write: a closed set, so that no request can make up a channel (``""``,
    ``"../x"``) or speak for another one's customers. Only a channel's own adapter, after it has
    verified the request, uses that channel's name."""

    API = "api"
    """``POST /api/ask`` (with its key)."""
    TELEGRAM = "telegram"
    WECHAT = "wechat"
    CHAT = "chat"
    """``kb chat`` in a terminal."""
    TEST = "test"
    BENCH = "bench"
    """The test suite and the benchmarks."""


def check_channel(channel: str) -> Channel:
    """``channel`` as a :class:`Channel`; ValueError for a name outside the set."""
    try:
        return Channel(channel)
    except ValueError:
        raise ValueError(f"unknown channel {channel[:40]!r}") from None


class TicketState(StrEnum):
    WAITING = "waiting"
    """Opened, no agent yet."""
    HUMAN = "human"
    """An agent has it: the bot stays quiet."""
    CLOSED = "closed"


OPEN_TICKET_STATES: tuple[TicketState, ...] = (TicketState.WAITING, TicketState.HUMAN)
"""The states of a ticket that is still open (one per customer at most)."""


class ConversationState(StrEnum):
    """``bot``, or the state of the customer's open ticket."""

    BOT = "bot"
    WAITING = "waiting"
    HUMAN = "human"


class TicketKind(StrEnum):
    """The four kinds of requests (docs/service-rules.md#kinds-and-priorities)."""

    QUESTION = "question"
    COMPLAINT = "complaint"
    SUGGESTION = "suggestion"
    FAULT = "fault"


class Priority(StrEnum):
    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


PRIORITY_ORDER: tuple[Priority, ...] = (Priority.URGENT, Priority.HIGH, Priority.NORMAL, Priority.LOW)
"""Most urgent first: how the queue is sorted."""


class ReplyKind(StrEnum):
    """What one message to the customer is."""

    ANSWER = "answer"
    ORDER = "order"
    MENU = "menu"
    HANDOFF = "handoff"
    ASK = "ask"
    FEEDBACK = "feedback"
    GREETING = "greeting"
    SMALLTALK = "smalltalk"
    INVALID = "invalid"
    AGENT = "agent"
    """An agent's words."""
    CLOSED = "closed"


class Awaiting(StrEnum):
    """What the bot asked the customer for, so that the next message can answer it."""

    FEEDBACK = "feedback"
    MENU = "menu"
    """A number from the menu of entries ("0": none of these)."""
    POPULAR = "popular"
    """A number from the welcome's popular questions."""
    ORDER_NUMBER = "order_number"
    PHONE_LAST4 = "phone_last4"


class Outcome(StrEnum):
    """How a logged question ended (the question log, ``kb report``)."""

    ANSWER = "answer"
    ORDER = "order"
    MENU = "menu"
    HANDOFF = "handoff"
    SILENT = "silent"
    """An agent had the conversation."""
    INVALID = "invalid"


class DeskRole(StrEnum):
    """Who signs in to the web desk, and so what they may open (least privilege)."""

    AGENT = "agent"
    """The queue, tickets and search."""
    EDITOR = "editor"
    """Search, suggestions and reports."""
    ADMIN = "admin"
    """The desk's accounts."""
