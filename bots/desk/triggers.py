"""Handoff triggers read from a message: the customer asks for a person, is upset, or raises
account security. The words are the editors' (``content/rules/handoff.yml``, in the build)."""

from __future__ import annotations

from typing import Any

from kb.text import normalize
from kb.vocabulary import HandoffReason
from retriever.matcher import KeywordMatcher

# Order of precedence when a message says several things: security first, then a request for a
# person, then anger (an angry request for a person is still a request).
TRIGGERS = (HandoffReason.PRIVACY, HandoffReason.REQUESTED, HandoffReason.UPSET)


class HandoffTriggers:
    def __init__(self, rules: dict[str, dict[str, list[str]]]) -> None:
        self._rules = {trigger: KeywordMatcher.from_section(rules.get(trigger)) for trigger in TRIGGERS}

    @classmethod
    def from_build_rules(cls, rules: dict[str, Any]) -> HandoffTriggers:
        return cls(rules.get("handoff") or {})

    def match(self, message: str) -> str | None:
        """The first trigger the message sets off, or None. ``message`` is as the customer wrote it."""
        text = normalize(message)
        return next((trigger for trigger in TRIGGERS if self._rules[trigger].matches(text)), None)
