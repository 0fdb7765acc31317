"""The engine's replies as WeChat plain text.

WeChat shows no buttons or markup in a text message and refuses a text longer than 2,048 bytes
(UTF-8), so an answer is the three steps as plain lines (the conclusion first, then the reason,
then the steps as ①②③), feedback is "reply 1 / 2", and a long text is cut into pieces at
paragraph or line boundaries, never inside a character. A numbered list sent through the
customer-service API becomes WeChat's clickable menu message instead (:func:`menu_message`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from bots.replies.messages import say
from bots.replies.reply import Reply
from kb.vocabulary import ReplyKind

MAX_BYTES = 2048
"""WeChat's limit for one text message (passive reply or customer-service message)."""
MENU_ITEMS = 10
"""The most items one ``msgmenu`` shows."""
NONE_OF_THESE = "0"
"""The menu item that hands the customer to a person, numbered as in the text list."""

_SENTENCE_END = re.compile(r"(?<=[。！？；!?;.])")


def size(text: str) -> int:
    return len(text.encode("utf-8"))


def render(reply: Reply) -> str:
    """One reply as WeChat plain text."""
    # A numbered list (a menu, the welcome's popular questions) is answered with its number.
    return reply.plain(numbering="circled", feedback_hint=True)


def menu_message(reply: Reply) -> dict[str, Any] | None:
    """A reply with numbered choices as WeChat's clickable menu (``msgmenu``), or None for one
    without. Item ids are the numbers of the text list, so that a click (which comes back with
    ``bizmsgmenuid``) answers the list as typing the number would; a menu of entries ends with
    "none of these" (0: a person), like the text's "reply 0"."""
    if not reply.options:
        return None
    menu = reply.kind == ReplyKind.MENU
    head = say(reply.language, "wechat_menu") if menu else reply.text
    items = [{"id": str(i + 1), "content": option} for i, option in enumerate(reply.options[: MENU_ITEMS - 1])]
    if menu:
        items.append({"id": NONE_OF_THESE, "content": say(reply.language, "wechat_none_of_these")})
    return {"head_content": "\n\n".join(p for p in (reply.notice, head) if p), "list": items, "tail_content": ""}


def render_all(replies: Iterable[Reply]) -> str:
    """Several replies of one turn as one text (a passive reply carries one message)."""
    return "\n\n".join(text for text in (render(r) for r in replies) if text)


def split(text: str, limit: int = MAX_BYTES) -> list[str]:
    """``text`` in pieces of at most ``limit`` bytes, cut at paragraphs, then lines, then
    sentences, and only as a last resort between two characters."""
    text = text.strip()
    if size(text) <= limit:
        return [text] if text else []
    pieces: list[str] = []
    current = ""
    for unit in _units(text, limit):
        separator, body = unit
        joined = f"{current}{separator}{body}" if current else body
        if size(joined) <= limit:
            current = joined
        else:
            if current:
                pieces.append(current.strip())
            current = body
    if current.strip():
        pieces.append(current.strip())
    return [p for p in pieces if p]


def shorten(text: str, language: str, limit: int = MAX_BYTES) -> str:
    """``text`` cut to one message at a clean boundary, saying that something was left out."""
    text = text.strip()
    if size(text) <= limit:
        return text
    marker = say(language, "wechat_shortened")
    head = split(text, limit - size(marker) - 2)[0]
    return f"{head}\n\n{marker}"


def _units(text: str, limit: int) -> Iterable[tuple[str, str]]:
    """(separator before it, piece) with every piece within ``limit`` bytes: paragraphs, and
    the lines or sentences of those that are longer."""
    for paragraph in text.split("\n\n"):
        if size(paragraph) <= limit:
            yield "\n\n", paragraph
            continue
        for j, line in enumerate(paragraph.split("\n")):
            parts = _small(line, limit) if size(line) > limit else [line]
            for k, part in enumerate(parts):
                # The parts of one long line join with nothing between them.
                yield ("\n\n" if j == 0 else "\n") if k == 0 else "", part


def _small(line: str, limit: int) -> list[str]:
    """A line longer than ``limit`` bytes, in pieces: whole sentences where they fit."""
    pieces: list[str] = []
    current = ""
    for sentence in (s for s in _SENTENCE_END.split(line) if s):
        for part in _by_characters(sentence, limit) if size(sentence) > limit else [sentence]:
            if size(current + part) <= limit:
                current += part
            else:
                pieces.append(current)
                current = part
    if current:
        pieces.append(current)
    return [p for p in pieces if p]


def _by_characters(text: str, limit: int) -> list[str]:
    pieces, current, used = [], [], 0
    for character in text:
        width = size(character)
        if used + width > limit:
            pieces.append("".join(current))
            current, used = [], 0
        current.append(character)
        used += width
    if current:
        pieces.append("".join(current))
    return pieces
