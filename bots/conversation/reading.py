"""Reading a customer's message before anything answers it: control bytes and terminal escapes
out, a length limit, the language, and the normalised text the rules and the retriever match."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from kb.text import detect_language, normalize

_UNPRINTABLE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffd\ufeff]")


@dataclass
class Message:
    text: str
    """As the customer wrote it, cleaned and cut to the limit."""
    normalized: str
    """:func:`kb.text.normalize`: simplified Chinese, half-width, lower case."""
    language: str
    truncated: bool
    raw: str
    """What arrived (cut to the limit), logged when nothing readable was left."""


def read_message(text: str, language: str, limit: int) -> Message:
    """The message, read. ``language`` is the conversation's, kept when the text has no words
    (``""`` when it is not known yet: the caller fills it in)."""
    text = unicodedata.normalize("NFC", text or "")
    cleaned = _UNPRINTABLE.sub("", text).strip()
    if len(cleaned) < len(text.strip()) / 2:
        cleaned = ""  # mostly control bytes: binary, not words
    truncated = len(cleaned) > limit
    cleaned = cleaned[:limit]
    normalized = normalize(cleaned)
    has_words = any(ch.isalpha() for ch in normalized)
    language = detect_language(cleaned) if has_words else language
    return Message(cleaned, normalized, language, truncated, (text or "")[:limit])
