"""The engine's rules with a retriever that answers what each case says (no models, no build):
which reason a handoff carries, what is masked before it is stored, and that every sentence the
bot says exists in both languages with the same placeholders."""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from bots.conversation import Engine
from bots.orders import DemoOrderBackend
from bots.replies.messages import TEXT
from bots.settings import EngineSettings
from ingest.rules import load_handoff_rules
from kb.model import FaqEntry, Steps
from kb.vocabulary import Awaiting, HandoffReason, Outcome, ReplyKind, RouterAction
from retriever import Answer
from retriever.answer import RunnerUp
from tests.conftest import ROOT, everything_in

STEPS = Steps("可以。", "依据退货政策。", ["打开我的订单"])
ORDER_NUMBERS = r"(?<![0-9])20\d{10}(?![0-9])"


def _entry(entry_id: str, money: bool = False) -> FaqEntry:
    return FaqEntry(id=entry_id, lang="zh", question=entry_id, alternates=[], steps=STEPS, money=money)


@dataclass
class FakeRetriever:
    """Answers every question with ``action`` (the router's decision) for ``entry``."""

    action: str = RouterAction.ANSWER
    confidence: float = 0.95
    reason: str | None = None
    entries: dict[str, FaqEntry] = field(default_factory=lambda: {"refund-time": _entry("refund-time")})
    asked: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        rules = {"handoff": load_handoff_rules(ROOT / "content", ROOT)}
        records = {entry_id: [entry] for entry_id, entry in self.entries.items()}
        self.kb = SimpleNamespace(build_id="fake", rules=rules, records=records)
        self.config = SimpleNamespace(thresholds=SimpleNamespace(answer=0.8, menu=0.5))

    def ask(self, text: str) -> Answer:
        self.asked.append(text)
        options = [RunnerUp(entry_id, entry_id, 0.6) for entry_id in self.entries]
        return Answer(
            question=text,
            language="zh",
            action=self.action,
            confidence=self.confidence,
            entry_id=next(iter(self.entries)),
            steps=STEPS,
            handoff_reason=self.reason,
            options=options if self.action == RouterAction.MENU else [],
            candidates=options,
        )

    def answer_entry(self, entry_id: str, language: str, text: str) -> Answer | None:
        if entry_id not in self.entries:
            return None
        return Answer(text, language, RouterAction.ANSWER, 1.0, entry_id=entry_id, steps=STEPS)


def make(tmp_path, state, retriever: Any = None, **settings: Any) -> Engine:
    """An engine over a fake retriever, with a fresh state store of the test's backend."""
    return Engine(
        retriever or FakeRetriever(),
        state.fresh(),
        DemoOrderBackend(tmp_path / "orders.sqlite"),
        EngineSettings(**settings),
        ORDER_NUMBERS,
    )


@pytest.mark.parametrize(
    ("message", "retriever", "reason"),
    [
        ("转人工", FakeRetriever(), HandoffReason.REQUESTED),
        ("I want to talk to a human", FakeRetriever(), HandoffReason.REQUESTED),
        ("又坏了！！你们怎么回事", FakeRetriever(), HandoffReason.UPSET),
        ("我的账号被盗了", FakeRetriever(), HandoffReason.PRIVACY),
        ("退款怎么还没到", FakeRetriever(RouterAction.HANDOFF, 0.9, HandoffReason.MONEY), HandoffReason.MONEY),
        ("火星上能送货吗", FakeRetriever(RouterAction.HANDOFF, 0.1, HandoffReason.LOW_CONFIDENCE), HandoffReason.LOW_CONFIDENCE),
        ("火星上能送货吗", FakeRetriever(RouterAction.HANDOFF, 0.1, None), HandoffReason.LOW_CONFIDENCE),
    ],
)
def test_each_handoff_carries_its_reason(tmp_path, state, message, retriever, reason):
    engine = make(tmp_path, state, retriever)
    turn = engine.handle("test", "u1", message)
    assert turn.handed_off and turn.ticket is not None
    assert turn.ticket.reason == reason
    assert turn.replies[0].kind == ReplyKind.HANDOFF
    logged = engine.store.questions()[-1]
    assert (logged.outcome, logged.reason) == (Outcome.HANDOFF, reason)
    assert engine.conversation("test", "u1").with_agent


def test_a_confident_answer_asks_for_feedback_and_a_money_entry_picked_from_a_menu_goes_to_a_person(tmp_path, state):
    engine = make(tmp_path, state)
    turn = engine.handle("test", "u1", "退款多久到账")
    assert turn.replies[0].kind == ReplyKind.ANSWER and turn.replies[0].asks_feedback
    assert engine.conversation("test", "u1").awaiting == Awaiting.FEEDBACK

    entries = {"price-protection": _entry("price-protection", money=True), "refund-time": _entry("refund-time")}
    engine = make(tmp_path / "menu", state, FakeRetriever(RouterAction.MENU, 0.6, entries=entries))
    turn = engine.handle("test", "u2", "差价")
    assert turn.replies[0].kind == ReplyKind.MENU and turn.replies[0].options == ["price-protection", "refund-time"]
    turn = engine.handle("test", "u2", "1")
    assert turn.handed_off and turn.ticket.reason == HandoffReason.MONEY


@pytest.mark.parametrize(
    ("message", "raw"),
    [
        ("我的电话 13812345678 收不到验证码", "13812345678"),
        ("电话 138-1234-5678", "138-1234-5678"),
        ("card 6222 0212 3456 7890 123", "6222 0212 3456 7890 123"),
        ("身份证 11010519491231002X", "11010519491231002X"),
        ("mail me at li.lei@example.com", "li.lei@example.com"),
    ],
)
def test_personal_data_is_masked_everywhere_it_is_kept(tmp_path, state, message, raw):
    engine = make(tmp_path, state)
    engine.handle("test", "u1", message)
    turn = engine.handle("test", "u1", "转人工 " + message)
    kept = [q.question for q in engine.store.questions()]
    kept += [m.text for m in engine.store.recent_messages("test", "u1")]
    kept += [m.text for m in engine.desk.ticket(turn.ticket.id).messages]
    assert kept and not any(raw in text for text in kept)
    assert raw not in everything_in(engine.store)


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_sentence_exists_in_both_languages_with_the_same_placeholders():
    assert set(TEXT["zh"]) == set(TEXT["en"])
    assert {key: _fields(text) for key, text in TEXT["zh"].items()} == {key: _fields(text) for key, text in TEXT["en"].items()}


def test_every_handoff_reason_has_its_sentence():
    for language in TEXT:
        assert {f"handoff_{reason}" for reason in HandoffReason} <= set(TEXT[language])


def test_a_number_answers_the_last_list_the_bot_sent(tmp_path, state):
    engine = make(tmp_path, state, common_questions={"zh": ["我的订单到哪了", "退款多久到账"], "en": ["Where is my order?"]})
    greeting = engine.welcome("test", "u1", "zh")
    assert greeting.options == ["我的订单到哪了", "退款多久到账"]
    turn = engine.handle("test", "u1", "1")  # "where is my order": the bot asks for its number
    assert turn.replies[0].kind == ReplyKind.ASK and not turn.handed_off
    assert engine.conversation("test", "u1").awaiting == Awaiting.ORDER_NUMBER

    engine.handle("test", "u2", "你好")
    retriever = engine.retriever
    turn = engine.handle("test", "u2", "2")
    assert turn.replies[0].kind == ReplyKind.ANSWER and retriever.asked[-1] == "退款多久到账"
    assert engine.handle("test", "u2", "7").replies  # out of the list: read as a message, not a crash


def test_none_of_these_hands_off_with_what_was_offered(tmp_path, state):
    entries = {"refund-time": _entry("refund-time"), "refund-method": _entry("refund-method")}
    engine = make(tmp_path, state, FakeRetriever(RouterAction.MENU, 0.6, entries=entries))
    menu = engine.handle("test", "u1", "钱什么时候回来")
    assert menu.replies[0].options == ["refund-time", "refund-method"] and "0" in menu.replies[0].plain()
    turn = engine.handle("test", "u1", "0")
    assert turn.handed_off and turn.ticket.reason == HandoffReason.LOW_CONFIDENCE
    assert [(c["entry_id"], c["offered"]) for c in engine.desk.ticket(turn.ticket.id).candidates] == [
        ("refund-time", True),
        ("refund-method", True),
    ]


def test_a_menu_pick_and_solved_after_an_unsure_answer_label_the_customers_words(tmp_path, state):
    entries = {"refund-time": _entry("refund-time"), "refund-method": _entry("refund-method")}
    engine = make(tmp_path, state, FakeRetriever(RouterAction.MENU, 0.6, entries=entries))
    engine.handle("test", "u1", "钱啥时候退回来 13812345678")
    engine.handle("test", "u1", "2")
    [pick] = engine.store.picks()
    assert (pick.entry_id, pick.source) == ("refund-method", "menu")
    assert pick.question.startswith("钱啥时候退回来") and "13812345678" not in pick.question  # masked

    sure = make(tmp_path / "sure", state, FakeRetriever(RouterAction.ANSWER, 0.95))
    sure.handle("test", "u1", "退款多久到账")
    sure.handle("test", "u1", "1")  # solved, but the answer was sure: nothing to learn
    assert sure.store.picks() == []
    unsure = make(tmp_path / "unsure", state, FakeRetriever(RouterAction.ANSWER, 0.7))
    unsure.handle("test", "u1", "钱多久回来")
    unsure.handle("test", "u1", "1")
    assert [(p.question, p.entry_id, p.source) for p in unsure.store.picks()] == [("钱多久回来", "refund-time", "solved")]
