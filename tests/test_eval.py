"""The eval contract: metrics on fixtures whose values are known by hand, and ``kb eval --json``."""

from __future__ import annotations

import json

import pytest

from bots.cli import main
from eval.metrics import answer_metrics, auroc, mean_reciprocal_rank, percentile, recall_at

EVAL_KEYS = {
    "recall_at_1",
    "recall_at_3",
    "recall_at_5",
    "menu_rate",
    "answered_in_scope",
    "resolved",
    "oos_answered",
    "mrr",
    "oos_auroc",
    "coverage",
    "answered_precision",
    "accuracy",
    "p50_ms",
    "p95_ms",
    "n_queries",
}


def test_recall_and_mrr():
    ranked = [["a", "b", "c"], ["b", "a", "c"], ["c", "b", "x"], ["x", "y", "z"]]
    gold = ["a", "a", "b", "a"]
    assert recall_at(ranked, gold, 1) == 0.25
    assert recall_at(ranked, gold, 2) == 0.75
    assert mean_reciprocal_rank(ranked, gold) == pytest.approx((1 + 1 / 2 + 1 / 2 + 0) / 4)


def test_auroc_counts_ties_as_half():
    assert auroc([0.9, 0.8], [0.1, 0.2]) == 1.0
    assert auroc([0.1], [0.9]) == 0.0
    assert auroc([0.5, 0.5], [0.5]) == 0.5
    # positives 0.9, 0.5; negatives 0.5, 0.1: pairs (0.9>0.5, 0.9>0.1, 0.5=0.5, 0.5>0.1) = 3.5 / 4
    assert auroc([0.9, 0.5], [0.5, 0.1]) == pytest.approx(0.875)
    assert auroc([0.9], []) is None


def test_answer_metrics():
    answered = [True, True, False, False, True]
    predicted = ["a", "b", "c", "x", "z"]
    gold = ["a", "a", "c", None, None]
    metrics = answer_metrics(answered, predicted, gold)
    assert metrics["coverage"] == pytest.approx(3 / 5)
    assert metrics["answered_precision"] == pytest.approx(1 / 3)
    # right: q1 (answered a=a); q4 out of scope and not answered
    assert metrics["accuracy"] == pytest.approx(2 / 5)


def test_percentile():
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile([10, 20], 95) == pytest.approx(19.5)


def test_kb_eval_json_on_a_set_whose_answers_are_known(small, tmp_path, capsys):
    folder = tmp_path / "set"
    folder.mkdir()
    entries = [
        {"id": "invoice", "question": "怎么开发票", "answer": "", "alt_questions": ["发票在哪里申请"], "extra": 1},
        {"id": "shipping-fee", "question": "运费多少钱", "answer": "8 元", "alt_questions": ["邮费怎么算"]},
        {"id": "password", "question": "How do I reset my password?", "answer": "", "alt_questions": ["forgot my password"]},
    ]
    queries = [
        {"query": "我要开发票", "gold_id": "invoice"},
        {"query": "邮费是多少", "gold_id": "shipping-fee"},
        {"query": "i forgot my password, how to reset it", "gold_id": "password"},
        {"query": "明天会下雨吗", "gold_id": None},
    ]
    (folder / "kb.jsonl").write_text("\n".join(json.dumps(e, ensure_ascii=False) for e in entries), encoding="utf-8")
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(q, ensure_ascii=False) for q in queries), encoding="utf-8")
    capsys.readouterr()
    assert small.cli("eval", str(folder), "--json") == 0
    metrics = json.loads(capsys.readouterr().out)
    assert set(metrics) == EVAL_KEYS
    assert metrics["n_queries"] == 4
    assert metrics["recall_at_1"] == 1.0 and metrics["mrr"] == 1.0
    assert metrics["oos_auroc"] == 1.0  # the weather question is the least confident
    assert 0 <= metrics["coverage"] <= 1 and metrics["p95_ms"] >= metrics["p50_ms"] > 0
    assert metrics["resolved"] >= metrics["answered_in_scope"] * metrics["answered_precision"] - 1e-9
    assert 0 <= metrics["menu_rate"] <= 1 and 0 <= metrics["oos_answered"] <= 1


def test_three_way_counts_a_menu_holding_the_right_entry_as_resolved():
    from eval.run import three_way
    from retriever import Answer, RunnerUp

    def answer(action: str, entry: str | None = None, options: tuple[str, ...] = ()) -> Answer:
        offered = [RunnerUp(o, o, 0.5) for o in options]
        return Answer("q", "zh", action, 0.5, entry_id=entry, options=offered)

    answers = [
        answer("answer", "a"),  # right
        answer("answer", "x"),  # wrong
        answer("menu", options=("y", "b", "z")),  # the right one is offered
        answer("menu", options=("y", "z")),  # not offered
        answer("handoff"),
        answer("answer", "a"),  # out of scope, answered
        answer("menu", options=("a",)),  # out of scope, a menu
    ]
    figures = three_way(answers, ["a", "b", "b", "c", "d", None, None])
    assert figures == {
        "menu_rate": 3 / 7,
        "answered_in_scope": 2 / 5,
        "resolved": 2 / 5,
        "oos_answered": 1 / 2,
    }


def test_kb_eval_reports_a_bad_line(tmp_path, capsys):
    (tmp_path / "kb.jsonl").write_text('{"id": "a", "question": "q"}\n{oops\n', encoding="utf-8")
    (tmp_path / "queries.jsonl").write_text("", encoding="utf-8")
    assert main(["eval", str(tmp_path)]) == 1
    assert "kb.jsonl:2: not JSON" in capsys.readouterr().err


def test_kb_eval_on_the_content_reports_the_money_gate(small, tmp_path, capsys):
    small.add_faq("invoice", "怎么开发票", ["发票在哪里申请"])
    small.add_faq("double-charge", "被扣了两次钱怎么办", ["重复扣款了"], extra="money: true\n")
    small.add("rules/money.yml", "zh:\n  keywords: [赔偿]\n  patterns: []\n")
    folder = tmp_path / "questions"
    folder.mkdir()
    rows = [
        {"query": "我要开发票", "gold_id": "invoice", "money": False},
        {"query": "付款的时候重复扣款了", "gold_id": "double-charge", "money": True},
        {"query": "快递丢了能赔偿吗", "gold_id": None, "money": True},
    ]
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    capsys.readouterr()
    assert small.cli("eval", str(folder), "--json") == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["money_recall"] == 1.0 and metrics["money_precision"] == 1.0
    assert metrics["recall_at_1"] == 1.0
