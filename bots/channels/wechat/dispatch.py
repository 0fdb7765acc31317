"""One WeChat message or event in, what to answer out (:class:`Outcome`), through the engine.

Synchronous and CPU-bound like the engine it calls: the route runs it in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from wechatpy.messages import BaseMessage

from bots.channels.wechat.format import NONE_OF_THESE, render, render_all
from bots.channels.wechat.sessions import release_if_idle, session_event
from bots.channels.wechat.settings import CHANNEL
from bots.conversation import Engine
from bots.replies import Reply, Turn, say
from bots.store import Ticket
from kb.vocabulary import Awaiting

SESSION_EVENTS = ("kf_create_session", "kf_switch_session", "kf_close_session")
WELCOME_EVENTS = ("subscribe", "subscribe_scan", "subscribe_scan_product")


@dataclass
class Outcome:
    """What to send back for one message."""

    text: str = ""
    """A text answer (any length: the route splits or shortens it)."""
    replies: list[Reply] = field(default_factory=list)
    """The engine's replies behind ``text``: sent through the customer-service API, a numbered
    list among them becomes a clickable menu."""
    transfer: bool = False
    """Hand the customer to WeChat's agent system (``transfer_customer_service``)."""
    notices: list[str] = field(default_factory=list)
    """With a transfer: what to tell the customer first, through the customer-service API."""
    language: str = "zh"
    opened: Ticket | None = None
    """A ticket this message opened: the agents are told."""

    @property
    def empty(self) -> bool:
        return not (self.text or self.transfer or self.notices)


def outcome_of(turn: Turn, language: str) -> Outcome:
    """The engine's turn for WeChat: while a ticket is open, every message goes on to the agent
    system (WeChat only forwards the messages it is told to transfer)."""
    if turn.ticket is not None and turn.ticket.is_open:
        opened = turn.ticket if turn.handed_off else None
        return Outcome(transfer=True, notices=[render(r) for r in turn.replies], language=language, opened=opened)
    if turn.silent or not turn.replies:
        return Outcome(language=language)
    return Outcome(text=render_all(turn.replies), replies=turn.replies, language=turn.replies[0].language)


Claimed = Callable[[Turn], "tuple[str, str] | None"]
"""Given a text message's turn, the (claim key, reply) to record with it (:meth:`Engine.handle`)."""


def dispatch(
    engine: Engine, message: BaseMessage, session_timeout_minutes: float = 30.0, claimed: Claimed | None = None
) -> Outcome:
    """Handle a verified message or event; ``claimed`` goes with a text message's turn."""
    user = message.source
    kind = (message.type or "").lower()
    if kind == "event":
        return _event(engine, message)
    if kind == "text":
        text = _clicked(engine, message) or message.content or ""
        return _text(engine, user, text, claimed, session_timeout_minutes)
    if kind == "voice" and (message.recognition or "").strip():
        return _text(engine, user, message.recognition, claimed, session_timeout_minutes)
    # Images, voice without recognition, locations, links, videos, files, mini-program cards.
    release_if_idle(engine, user, session_timeout_minutes)
    language = engine.conversation(CHANNEL, user).language
    ticket = engine.open_ticket(CHANNEL, user)
    if ticket is not None:
        # The agent can see what the customer sent in WeChat's agent system; the ticket notes it.
        engine.desk.note(ticket.id, "customer", f"[{kind or 'message'}]")
        return Outcome(transfer=True, language=language)
    key = "wechat_voice_unclear" if kind == "voice" else "wechat_unsupported"
    return Outcome(text=say(language, key), language=language)


def _clicked(engine: Engine, message: BaseMessage) -> str:
    """A click on a menu message (``bizmsgmenuid``: the item's number) as the number typed, while
    the list it answers is still the one awaited; otherwise "" and the item's text is the
    question (a click on an old menu asks what it says, instead of picking from a newer list)."""
    item = str(getattr(message, "_data", {}).get("bizmsgmenuid") or "").strip()
    if not item.isdigit():
        return ""
    awaiting = engine.conversation(CHANNEL, message.source).awaiting
    if awaiting == Awaiting.MENU or (awaiting == Awaiting.POPULAR and item != NONE_OF_THESE):
        return item
    return ""


def _text(engine: Engine, user: str, text: str, claimed: Claimed | None, session_timeout_minutes: float) -> Outcome:
    # A session WeChat has released (quiet for the timeout) is closed within the turn.
    turn = engine.handle(CHANNEL, user, text, claimed, release_after_minutes=session_timeout_minutes)
    language = turn.replies[0].language if turn.replies else engine.conversation(CHANNEL, user).language
    return outcome_of(turn, language)


def _event(engine: Engine, message: BaseMessage) -> Outcome:
    user, event = message.source, (message.event or "").lower()
    language = engine.conversation(CHANNEL, user).language
    if event in WELCOME_EVENTS:
        engine.note(CHANNEL, user, "subscribed")
        welcome = engine.welcome(CHANNEL, user, language)
        return Outcome(text=render(welcome), replies=[welcome], language=language)
    if event == "unsubscribe":
        # Recorded with the conversation (and on an open ticket, for the agent); nothing to send.
        engine.note(CHANNEL, user, "unsubscribed", for_agent="the customer unfollowed the account")
        return Outcome(language=language)
    if event in SESSION_EVENTS:
        account = getattr(message, "account", None) or getattr(message, "to_account", None) or ""
        session_event(engine, user, event, account)
    return Outcome(language=language)
