"""The bot's rooms, each with one job (docs/architecture.md has the layers):

- :mod:`bots.conversation`: the engine, one customer message in, replies out;
- :mod:`bots.desk`: handoff to people: triggers, tickets, SLA, the agents' actions;
- :mod:`bots.replies`: what the bot says, in Chinese and English;
- :mod:`bots.orders`: order lookup (demo and HTTP backends);
- :mod:`bots.store`: the conversation state (role protocols, SQLite);
- :mod:`bots.channels`: Telegram and WeChat, mounted through a hub;
- :mod:`bots.server`: ``kb serve``; :mod:`bots.cli`: the ``kb`` command; :mod:`bots.report`: ``kb report``.
"""
