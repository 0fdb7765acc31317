"""Handoff triggers read from a message: the customer asks for a person, is upset, or raises
account security. The words are the editors' (``content/rules/handoff.yml``, in the build)."""

from __future__ import annotations

import re
from typing import Any

from kb.text import normalize

# Order of precedence when a message says several things: security first, then a request for a
# person, then anger (an angry request for a person is still a request).
TRIGGERS = ("privacy", "requested", "upset")


class HandoffTriggers:
    def __init__(self, rules: dict[str, dict[str, list[str]]]) -> None:
        self._rules: dict[str, tuple[list[str], re.Pattern[str] | None]] = {}
        for trigger in TRIGGERS:
            section = rules.get(trigger) or {}
            patterns = section.get("patterns") or []
            pattern = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None
            self._rules[trigger] = ([k for k in section.get("keywords") or [] if k], pattern)

    @classmethod
    def from_build_rules(cls, rules: dict[str, Any]) -> HandoffTriggers:
        return cls(rules.get("handoff") or {})

    def match(self, message: str) -> str | None:
        """The first trigger the message sets off, or None. ``message`` is as the customer wrote it."""
        text = normalize(message)
        for trigger in TRIGGERS:
            keywords, pattern = self._rules[trigger]
            if any(k in text for k in keywords) or (pattern is not None and pattern.search(text)):
                return trigger
        return None
