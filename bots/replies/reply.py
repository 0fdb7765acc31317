"""What the engine hands a channel: replies to send and what happened (:class:`Turn`), and
messages for a customer that start on the agents' side (:class:`Delivery`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bots.replies.messages import say
from bots.store import Ticket
from kb.model import Steps
from retriever import Answer, format_steps

FEEDBACK_BUTTONS = ("solved", "not_solved", "agent")


@dataclass
class Reply:
    """One message to the customer. Channels format it (Telegram HTML, WeChat plain text);
    :meth:`plain` is the plain-text form."""

    kind: str
    """``answer``, ``order``, ``menu``, ``handoff``, ``ask``, ``feedback``, ``greeting``,
    ``smalltalk``, ``invalid``, ``agent`` (an agent's words) or ``closed``."""
    language: str
    text: str = ""
    """What comes before the steps: a handoff notice, a question, an agent's words."""
    steps: Steps | None = None
    options: list[str] = field(default_factory=list)
    """Numbered choices: the entries of a menu, or popular questions."""
    notice: str = ""
    """Said first, e.g. that a long message was cut."""
    after: str = ""
    """Said after the steps, e.g. when an agent will answer."""
    asks_feedback: bool = False
    """Offer solved / not solved / agent (buttons where the channel has them)."""
    entry_id: str | None = None

    def plain(self, numbering: str = "digits", feedback_hint: bool = True) -> str:
        """Plain text. ``feedback_hint`` adds "reply 1 / 2" for channels without buttons."""
        parts = [self.notice, self.text]
        if self.steps is not None:
            parts.append(format_steps(self.steps, self.language, numbering))
        if self.options:
            parts.append("\n".join(f"{i + 1}. {option}" for i, option in enumerate(self.options)))
        parts.append(self.after)
        if self.asks_feedback and feedback_hint:
            parts.append(say(self.language, "ask_feedback"))
        return "\n\n".join(p for p in parts if p)


@dataclass
class Turn:
    """The engine's response to one customer message."""

    replies: list[Reply] = field(default_factory=list)
    ticket: Ticket | None = None
    """The customer's open ticket, when there is one."""
    handed_off: bool = False
    """This message opened the ticket: tell the agents."""
    silent: bool = False
    """An agent has the conversation: the bot sends nothing."""
    answer: Answer | None = None
    """The knowledge base's answer, when it was asked."""

    @property
    def text(self) -> str:
        return "\n\n".join(r.plain() for r in self.replies)


@dataclass
class Delivery:
    """Messages for a customer that start on the agents' side (a reply, the end of a session)."""

    channel: str
    user_id: str
    replies: list[Reply]
    ticket: Ticket
