"""Whether an update that came with the right secret has the shape Telegram gives it.

The secret proves who sent a request, not that its fields are what the bot expects: a ``text``
that is a number or a list, a ``chat`` without an id, or a lone surrogate (``"\\ud800"``: valid
JSON, but no UTF-8 store takes it) would fail deep in a handler, with a traceback and half of
the update stored. Such an update is refused at the door instead (400), before anything reads it.
"""

from __future__ import annotations

import re
from typing import Any

_SURROGATE = re.compile(r"[\ud800-\udfff]")
_MESSAGES = ("message", "edited_message", "channel_post", "edited_channel_post")
_TEXTS = ("text", "caption")


def malformed(update: dict[str, Any]) -> str | None:
    """What is wrong with ``update`` (a decoded JSON object), or None when nothing is."""
    if _has_surrogate(update):
        return "a string holds a lone surrogate"
    for kind in _MESSAGES:
        if kind in update:
            problem = _message(update[kind])
            if problem:
                return f"{kind}: {problem}"
    if "callback_query" in update:
        query = update["callback_query"]
        if not isinstance(query, dict) or not isinstance(query.get("id"), str):
            return "callback_query: not a callback query"
        if not _user(query.get("from")):
            return "callback_query: malformed from"
        if "data" in query and not isinstance(query["data"], str):
            return "callback_query: data is not a string"
        if "message" in query:
            problem = _message(query["message"])
            if problem:
                return f"callback_query.message: {problem}"
    return None


def _message(message: Any, depth: int = 0) -> str | None:
    if not isinstance(message, dict) or type(message.get("message_id")) is not int:
        return "not a message"
    chat = message.get("chat")
    if not isinstance(chat, dict) or type(chat.get("id")) is not int or not isinstance(chat.get("type"), str):
        return "malformed chat"
    if "from" in message and not _user(message["from"]):
        return "malformed from"
    for name in _TEXTS:
        if name in message and not isinstance(message[name], str):
            return f"{name} is not a string"
    if "reply_to_message" in message:
        if depth > 0:
            return "nested replies"
        return _message(message["reply_to_message"], depth + 1)
    return None


def _user(user: Any) -> bool:
    return isinstance(user, dict) and type(user.get("id")) is int and isinstance(user.get("first_name", ""), str)


def _has_surrogate(value: Any) -> bool:
    # Iterative: a deeply nested body must not exhaust the stack (json.loads already bounds depth).
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
