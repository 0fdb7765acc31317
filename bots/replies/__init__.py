"""What the bot says: the sentences of the bot in each language (:mod:`~bots.replies.messages`)
and the replies the engine hands a channel (:mod:`~bots.replies.reply`)."""

from bots.replies.messages import duration, say
from bots.replies.reply import FEEDBACK_BUTTONS, Delivery, Reply, Turn

__all__ = ["FEEDBACK_BUTTONS", "Delivery", "Reply", "Turn", "duration", "say"]
