"""Replies as Telegram HTML: the conclusion in bold, the reason, the steps as a numbered list.

Telegram refuses a message longer than 4096 characters, and a cut in the middle of a tag makes the
whole message unparseable. So texts are built from :class:`Line` objects, each one line of plain
text with at most one style, escaped and wrapped on its own: any line boundary is a safe place to
split, and a line that alone is too long is cut at a space or a punctuation mark.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from bots.replies.messages import say
from bots.replies.reply import Reply
from kb.vocabulary import ReplyKind
from retriever.render import TEXT as LABELS

LIMIT = 4096
"""Telegram's maximum message length."""

_BREAK = re.compile(r"[\s。！？；，、.!?;,)）]")


@dataclass(frozen=True)
class Line:
    """One line of text; ``style`` is ``""``, ``"b"`` (bold) or ``"i"`` (italic)."""

    text: str
    style: str = ""

    def html(self) -> str:
        escaped = html.escape(self.text, quote=False)
        return f"<{self.style}>{escaped}</{self.style}>" if self.style and escaped else escaped


Paragraph = list[Line]


def size(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units: an emoji is two)."""
    return len(text.encode("utf-16-le")) // 2


def paragraph(text: str, style: str = "") -> Paragraph:
    """A multi-line text as a paragraph of lines."""
    return [Line(line, style) for line in text.splitlines()]


def reply_paragraphs(reply: Reply) -> list[Paragraph]:
    """The parts of a reply, in the order :meth:`Reply.plain` uses, styled for Telegram."""
    words = LABELS.get(reply.language, LABELS["en"])
    colon = "：" if reply.language == "zh" else ": "
    parts: list[Paragraph] = []
    if reply.notice:
        parts.append(paragraph(reply.notice, "i"))
    if reply.kind == ReplyKind.AGENT:
        parts.append([Line(say(reply.language, "telegram_from_agent"), "b"), *paragraph(reply.text)])
    elif reply.text:
        parts += [paragraph(block) for block in reply.text.split("\n\n")]
    if reply.steps is not None:
        steps = reply.steps
        parts.append(paragraph(steps.conclusion, "b"))
        parts.append(paragraph(f"{words['reason']}{colon}{steps.reason}"))
        numbered = [Line(f"{i + 1}. {step}") for i, step in enumerate(steps.instruction)]
        parts.append([Line(f"{words['instruction']}{colon}".rstrip()), *numbered])
    if reply.options and reply.kind != ReplyKind.GREETING:  # a greeting's popular questions are buttons only
        parts.append([Line(f"{i + 1}. {option}") for i, option in enumerate(reply.options)])
    if reply.after:
        parts.append(paragraph(reply.after))
    return [p for p in parts if p]


def render(reply: Reply, limit: int = LIMIT) -> list[str]:
    """The reply as one or more HTML messages, each within ``limit``. Feedback is asked for
    with buttons (:mod:`bots.channels.telegram.keyboards`), not with "reply 1 / 2"."""
    return chunks(reply_paragraphs(reply), limit)


def chunks(paragraphs: list[Paragraph], limit: int = LIMIT) -> list[str]:
    """HTML messages within ``limit``: whole paragraphs where they fit, else whole lines, and a
    line longer than a message cut at a space or punctuation mark."""
    messages: list[str] = []
    current: list[str] = []

    def used() -> int:
        return size("\n".join(current))

    def flush() -> None:
        while current and not current[-1]:
            current.pop()
        if current:
            messages.append("\n".join(current))
        current.clear()

    for para in paragraphs:
        rendered = [piece for line in para for piece in _fit(line, limit)]
        separator = [""] if current else []
        if size("\n".join([*current, *separator, *rendered])) <= limit:
            current += separator + rendered
            continue
        if size("\n".join(rendered)) <= limit:
            flush()
            current += rendered
            continue
        if current:
            current.append("")
        for piece in rendered:
            if current and used() + 1 + size(piece) > limit:
                flush()
            current.append(piece)
    flush()
    return messages


def _fit(line: Line, limit: int) -> list[str]:
    """The line as HTML pieces, each within ``limit`` (usually one piece)."""
    rendered = line.html()
    if size(rendered) <= limit:
        return [rendered]
    pieces, text = [], line.text
    while text:
        cut = _longest_prefix(line, text, limit)
        pieces.append(Line(text[:cut].rstrip(), line.style).html())
        text = text[cut:].lstrip()
    return [p for p in pieces if p]


def _longest_prefix(line: Line, text: str, limit: int) -> int:
    """Where to cut ``text`` so that its HTML fits: after the last break within the limit."""
    low, high = 1, len(text)
    while low < high:  # the longest prefix whose HTML fits
        middle = (low + high + 1) // 2
        if size(Line(text[:middle], line.style).html()) <= limit:
            low = middle
        else:
            high = middle - 1
    if low == len(text):
        return low
    breaks = [m.end() for m in _BREAK.finditer(text, 0, low)]
    best = breaks[-1] if breaks else 0
    return best if best > low // 2 else low  # no break in the second half: cut hard
