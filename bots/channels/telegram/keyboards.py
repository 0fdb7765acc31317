"""Inline buttons under the bot's messages, and what their callback data means.

Telegram gives a button at most 64 bytes of callback data, and anyone can send any bytes as
callback data, so the data is short, versioned by its prefix, and parsed defensively:

- ``fb:1:<entry>`` / ``fb:0:<entry>``: solved / not solved, for the answer of ``<entry>`` (the
  entry is left out when it would not fit; a press on an older answer is then not recorded);
- ``agent``: talk to a person;
- ``q:<lang>:<i>``: popular question ``i`` of ``/start`` and ``/help``;
- ``pick:<i>``: option ``i`` (1-based) of a menu; ``pick:0``: none of these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bots.replies.messages import say
from bots.replies.reply import Reply
from kb.vocabulary import ReplyKind

MAX_CALLBACK_BYTES = 64
MAX_LABEL_CHARS = 60
"""Longer button labels are shortened: a phone shows about this much."""
_INDEX = re.compile(r"[0-9]{1,3}")


@dataclass(frozen=True)
class Callback:
    action: str
    """``solved``, ``not_solved``, ``agent``, ``question`` or ``pick``."""
    value: str = ""
    """The entry id (feedback), the language (question)."""
    index: int = 0


def _data(text: str) -> str:
    if len(text.encode()) > MAX_CALLBACK_BYTES:
        raise ValueError(f"callback data over {MAX_CALLBACK_BYTES} bytes: {text!r}")
    return text


def _label(text: str) -> str:
    return text if len(text) <= MAX_LABEL_CHARS else text[: MAX_LABEL_CHARS - 1] + "…"


def feedback_data(solved: bool, entry_id: str | None) -> str:
    data = f"fb:{int(solved)}:{entry_id or ''}"
    return data if len(data.encode()) <= MAX_CALLBACK_BYTES else f"fb:{int(solved)}:"


def feedback_keyboard(language: str, entry_id: str | None) -> InlineKeyboardMarkup:
    """Solved / not solved, and talk to an agent, under an answer."""
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(say(language, "telegram_solved"), callback_data=feedback_data(True, entry_id)),
                InlineKeyboardButton(say(language, "telegram_not_solved"), callback_data=feedback_data(False, entry_id)),
            ],
            [InlineKeyboardButton(say(language, "telegram_agent"), callback_data=_data("agent"))],
        ]
    )


def agent_keyboard(language: str) -> InlineKeyboardMarkup:
    """One button: talk to an agent (after "not solved")."""
    return InlineKeyboardMarkup([[InlineKeyboardButton(say(language, "telegram_agent"), callback_data=_data("agent"))]])


def questions_keyboard(language: str, questions: list[str]) -> InlineKeyboardMarkup | None:
    """Popular questions, one a row; pressing one asks it."""
    rows = [[InlineKeyboardButton(_label(q), callback_data=_data(f"q:{language}:{i}"))] for i, q in enumerate(questions[:10])]
    return InlineKeyboardMarkup(rows) if rows else None


def options_keyboard(options: list[str], language: str = "zh") -> InlineKeyboardMarkup | None:
    """The choices of the menu, numbered as in the text, and "none of these" (0: a person)."""
    rows = [
        [InlineKeyboardButton(_label(f"{i + 1}. {option}"), callback_data=_data(f"pick:{i + 1}"))]
        for i, option in enumerate(options[:10])
    ]
    if rows:
        rows.append([InlineKeyboardButton(say(language, "telegram_none_of_these"), callback_data=_data("pick:0"))])
    return InlineKeyboardMarkup(rows) if rows else None


def keyboard_for(reply: Reply) -> InlineKeyboardMarkup | None:
    """The buttons a reply gets: feedback under an answer, questions under a greeting, choices
    under a menu."""
    if reply.asks_feedback:
        return feedback_keyboard(reply.language, reply.entry_id)
    if reply.kind == "greeting" and reply.options:
        return questions_keyboard(reply.language, reply.options)
    if reply.kind == ReplyKind.MENU and reply.options:
        return options_keyboard(reply.options, reply.language)
    return None


def parse_callback(data: str | None) -> Callback | None:
    """What a button press asks for; None for data this bot did not make."""
    if not data or len(data.encode()) > MAX_CALLBACK_BYTES:
        return None
    kind, _, rest = data.partition(":")
    if kind == "agent" and not rest:
        return Callback("agent")
    if kind == "fb":
        flag, _, entry = rest.partition(":")
        if flag in ("0", "1"):
            return Callback("solved" if flag == "1" else "not_solved", entry)
    if kind == "q":
        language, _, index = rest.partition(":")
        if language and _INDEX.fullmatch(index):
            return Callback("question", language, int(index))
    if kind == "pick" and _INDEX.fullmatch(rest):
        return Callback("pick", index=int(rest))
    return None
