"""The conversation: a customer's message read (:mod:`~bots.conversation.reading`) and answered
by the channel-agnostic engine (:mod:`~bots.conversation.engine`)."""

from bots.conversation.engine import Engine
from bots.conversation.reading import Message, read_message

__all__ = ["Engine", "Message", "read_message"]
