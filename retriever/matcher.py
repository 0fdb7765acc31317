"""The editors' keyword rules: a list of keywords and of regular expressions, matched on the
normalised text (:func:`kb.text.normalize`). The money gate (``content/rules/money.yml``) and the
handoff triggers (``content/rules/handoff.yml``) are both such rules."""

from __future__ import annotations

import re


class KeywordMatcher:
    """Matches a text that contains one of ``keywords`` or in which one of ``patterns`` is found."""

    def __init__(self, keywords: list[str], patterns: list[str]) -> None:
        self.keywords = [k for k in keywords if k]
        self.pattern = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None

    @classmethod
    def from_section(cls, section: dict | None) -> KeywordMatcher:
        """From a rules section: ``{"keywords": [...], "patterns": [...]}``, either may be missing."""
        section = section or {}
        return cls(section.get("keywords") or [], section.get("patterns") or [])

    def matches(self, normalized_text: str) -> bool:
        if any(k in normalized_text for k in self.keywords):
            return True
        return bool(self.pattern and self.pattern.search(normalized_text))
