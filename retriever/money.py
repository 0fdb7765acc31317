"""The money gate: a question about money goes to a person, whatever the similarity says."""

from __future__ import annotations

from retriever.matcher import KeywordMatcher


class MoneyGate(KeywordMatcher):
    """Keywords and patterns from ``content/rules/money.yml``, matched on the normalised question."""

    @classmethod
    def from_rules(cls, rules: dict) -> MoneyGate:
        return cls.from_section(rules.get("money"))
