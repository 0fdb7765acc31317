"""The money gate: a question about money goes to a person, whatever the similarity says."""

from __future__ import annotations

import re


class MoneyGate:
    """Keywords and patterns from ``content/rules/money.yml``, matched on the normalised question."""

    def __init__(self, keywords: list[str], patterns: list[str]) -> None:
        self.keywords = [k for k in keywords if k]
        self.pattern = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None

    @classmethod
    def from_rules(cls, rules: dict) -> MoneyGate:
        money = rules.get("money") or {}
        return cls(money.get("keywords") or [], money.get("patterns") or [])

    def matches(self, normalized_question: str) -> bool:
        if any(k in normalized_question for k in self.keywords):
            return True
        return bool(self.pattern and self.pattern.search(normalized_question))
