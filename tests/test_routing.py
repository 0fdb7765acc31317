"""The one routing rule (retriever.routing) and the one keyword rule (retriever.matcher), which
the router, kb eval --calibrate, the money gate and the handoff triggers all use."""

from __future__ import annotations

import pytest

from bots.desk.triggers import HandoffTriggers
from retriever.matcher import KeywordMatcher
from retriever.money import MoneyGate
from retriever.routing import route


@pytest.mark.parametrize(
    ("confidence", "has_candidates", "money_question", "money_top", "expected"),
    [
        (0.9, True, False, False, ("answer", None)),
        (0.5, True, False, False, ("menu", None)),  # not sure: the customer picks
        (0.5, False, False, False, ("handoff", "low_confidence")),  # nothing to offer
        (0.2, True, False, False, ("handoff", "low_confidence")),
        (0.9, True, True, False, ("handoff", "money")),
        (0.1, True, True, False, ("handoff", "money")),
        (0.9, True, False, True, ("handoff", "money")),
        (0.5, True, False, True, ("handoff", "money")),  # a money entry on top of a menu
        (0.2, True, False, True, ("handoff", "low_confidence")),  # not offered anyway: the reason stays
    ],
)
def test_route(confidence, has_candidates, money_question, money_top, expected):
    decided = route(confidence, 0.8, 0.4, has_candidates=has_candidates, money_question=money_question, money_top=money_top)
    assert decided == expected


def test_keywords_and_patterns_match_on_the_normalised_text():
    matcher = KeywordMatcher.from_section({"keywords": ["退款", ""], "patterns": [r"\d+元"]})
    assert matcher.matches("我要退款") and matcher.matches("差了30元") and not matcher.matches("你好")
    assert not KeywordMatcher.from_section(None).matches("退款")


def test_the_money_gate_and_the_triggers_use_the_same_rule():
    rules = {"keywords": ["账号被盗"], "patterns": [r"密码.*泄露"]}
    gate, triggers = MoneyGate.from_rules({"money": rules}), HandoffTriggers({"privacy": rules})
    for text in ["我的账号被盗了", "密码好像泄露了", "快递到哪了"]:
        assert gate.matches(text) == (triggers.match(text) == "privacy") == KeywordMatcher.from_section(rules).matches(text)
