"""What the knowledge base holds: FAQ entries, policy chunks, and the phrases that are searched."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

Kind = Literal["faq", "policy"]


@dataclass
class Steps:
    """The three steps of every answer: conclusion, reason, instruction."""

    conclusion: str
    reason: str
    instruction: list[str]
    """Numbered steps, one a line (without their numbers), or one pointer line."""


@dataclass
class FaqEntry:
    """One language version of an FAQ entry. The versions of one topic share ``id``."""

    id: str
    lang: str
    question: str
    alternates: list[str]
    steps: Steps
    category: str = ""
    tags: list[str] = field(default_factory=list)
    money: bool = False
    valid_from: date | None = None
    valid_until: date | None = None
    source: str = ""
    line: int = 1

    kind: Kind = "faq"

    def is_valid_on(self, day: date) -> bool:
        return not (self.valid_from and day < self.valid_from) and not (self.valid_until and day > self.valid_until)


@dataclass
class PolicyChunk:
    """One section of a policy document, with the headings above it."""

    id: str
    """``policy-id#n``, stable while the document's sections keep their order."""
    policy_id: str
    lang: str
    title: str
    heading_path: list[str]
    text: str
    steps: list[str]
    source: str = ""
    line: int = 1

    kind: Kind = "policy"
    money: bool = False

    @property
    def heading(self) -> str:
        return " › ".join(self.heading_path)


Record = FaqEntry | PolicyChunk


@dataclass
class Phrase:
    """A text that is embedded and searched; a hit on it is a hit on ``entry_id``."""

    entry_id: str
    lang: str
    text: str
    """Normalised text (see :func:`kb.text.normalize`)."""
    tokens: list[str]


def record_to_dict(record: Record) -> dict[str, Any]:
    # A shallow copy: ``dataclasses.asdict`` deep-copies every field, seconds on a large build.
    data = dict(vars(record))
    if isinstance(record, FaqEntry):
        data["steps"] = dict(vars(record.steps))
    for key in ("valid_from", "valid_until"):
        if data.get(key) is not None:
            data[key] = data[key].isoformat()
    return data


def record_from_dict(data: dict[str, Any]) -> Record:
    data = dict(data)
    if data.get("kind") == "policy":
        return PolicyChunk(**data)
    data["steps"] = Steps(**data["steps"])
    for key in ("valid_from", "valid_until"):
        if data.get(key):
            data[key] = date.fromisoformat(data[key])
    return FaqEntry(**data)
