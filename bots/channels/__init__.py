"""The channels customers write on: Telegram (:mod:`~bots.channels.telegram`) and a WeChat
Official Account (:mod:`~bots.channels.wechat`). Each mounts itself on the server through the
:class:`~bots.channels.hub.ChannelHub` it is given, and never imports the server."""

from bots.channels.hub import ChannelHub, Sender, TicketListener

__all__ = ["ChannelHub", "Sender", "TicketListener"]
