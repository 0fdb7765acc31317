"""``kb eval --calibrate``: thresholds chosen on fixtures whose right answer is known by hand, the
replay of the router checked against the real one, and ``--write-config`` editing only
``[thresholds]``."""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pytest

from eval.calibrate import calibrate, decide, figures, menu_threshold, nice_threshold, observe, split, sweep, write_thresholds
from eval.dataset import Query, load_queries
from eval.run import Outcome, ask_all, serving
from kb.config import ThresholdConfig
from retriever import Answer, RunnerUp
from tests.conftest import ROOT
from tests.test_compare import write_set


def outcome(confidence: float, top: str | None, gold: str | None, runner_up: str = "other", gap: float = 0.1, money=False):
    """A recorded answer: ``top`` first, ``runner_up`` ``gap`` below it."""
    candidates = [] if top is None else [RunnerUp(top, top, 0.8), RunnerUp(runner_up, runner_up, 0.8 - gap)]
    answer = Answer(question="q", language="zh", action="?", confidence=confidence, candidates=candidates)
    answer.handoff_reason = "money" if money else None
    return Outcome(Query("q", gold), answer)


def twice(outcomes: list[Outcome]) -> list[Outcome]:
    """Each outcome on two lines in a row: the calibration and held-out halves are then the same."""
    return [o for o in outcomes for _ in range(2)]


# Right answers at 0.95 ... 0.8, wrong ones at 0.6 and 0.2: at precision 1.0 the answer threshold
# must lie in (0.6, 0.8], and 0.7 is the round number in the middle.
SEPARABLE = [
    outcome(0.95, "a", "a"),
    outcome(0.9, "b", "b"),
    outcome(0.85, "c", "c"),
    outcome(0.8, "d", "d"),
    outcome(0.6, "a", "b"),
    outcome(0.2, "x", None),
]


def test_split_calibrates_on_the_even_lines_and_reports_on_the_odd_ones():
    assert split([1, 2, 3, 4, 5]) == ([2, 4], [1, 3, 5])


def test_sweep_gives_precision_and_coverage_at_every_threshold():
    curve = sweep(observe(SEPARABLE, {}))
    assert curve.thresholds.tolist() == [0.95, 0.9, 0.85, 0.8, 0.6, 0.2]
    assert curve.precision.tolist() == pytest.approx([1, 1, 1, 1, 4 / 5, 4 / 6])
    assert curve.coverage.tolist() == pytest.approx([1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1])
    # Joint accuracy counts the out-of-scope question as right while it is not answered.
    assert curve.accuracy.tolist() == pytest.approx([2 / 6, 3 / 6, 4 / 6, 5 / 6, 5 / 6, 4 / 6])


def test_the_known_threshold_is_found_and_holds_on_the_held_out_half():
    result = calibrate(twice(SEPARABLE), {}, ThresholdConfig(), target=1.0)
    assert result.answer == 0.7
    assert result.held_out.answered_precision == 1.0 and result.held_out.coverage == pytest.approx(4 / 6)
    assert result.held_out.accuracy == pytest.approx(5 / 6)
    assert result.most_accurate[0] == 0.7
    lower = calibrate(twice(SEPARABLE), {}, ThresholdConfig(), target=0.8)
    assert lower.answer == 0.4 and lower.held_out.coverage == pytest.approx(5 / 6)
    point = next(p for p in result.curve if p.threshold == 0.9)
    assert (point.precision, point.coverage) == (1.0, pytest.approx(2 / 6))


def test_menus_go_down_to_where_they_stop_offering_the_right_entry():
    # Below the answer threshold: the menu holds the right entry (as runner-up) at 0.6 and 0.5,
    # not at 0.4 and 0.3 (out of scope): with those two, half the menus would help.
    questions = [
        outcome(0.95, "a", "a"),
        outcome(0.9, "b", "b"),
        outcome(0.6, "a", "other"),
        outcome(0.5, "b", "other"),
        outcome(0.4, "x", None),
        outcome(0.3, "y", None),
        outcome(0.2, "z", None),
    ]
    observations = observe(questions, {})
    assert menu_threshold(observations, 0.8, target=0.5) == 0.3
    assert menu_threshold(observations, 0.8, target=0.9) == 0.5
    assert menu_threshold(observations, 0.8, target=1.01) == 0.8  # no menus: below answer, hand off
    result = calibrate(twice(questions), {}, ThresholdConfig(), target=1.0)
    assert result.answer == 0.7 and result.menu == 0.3 and result.clarify == result.menu  # answer in (0.6, 0.9]
    assert result.held_out.menu_rate == pytest.approx(4 / 7) and result.held_out.menu_helpful == 0.5
    assert result.held_out.resolved == 1.0  # two answered right, two offered the right entry
    assert decide(observations, 0.8, 0.3) == ["answer", "answer", "menu", "menu", "menu", "menu", "handoff"]


def test_money_questions_are_never_answered_whatever_the_thresholds():
    questions = [outcome(0.9, "a", "a", money=True), outcome(0.9, "b", "b"), outcome(0.5, "c", "c")]
    observations = observe(questions, {})
    assert decide(observations, 0.0, 0.0) == ["handoff", "answer", "answer"]
    assert decide(observations, 0.8, 0.4) == ["handoff", "answer", "menu"]
    assert figures(observations, 0.6, 0.25).coverage == pytest.approx(1 / 3)


def test_an_unreachable_target_leaves_the_thresholds_alone():
    result = calibrate(twice([outcome(0.9, "a", "b"), outcome(0.8, "a", "a"), outcome(0.7, "a", "c")]), {}, ThresholdConfig())
    assert not result.found and result.answer is None and result.menu is None
    assert result.best_precision == pytest.approx(1 / 2)
    assert result.to_dict()["answer"] is None


def test_nice_threshold_is_short_and_inside_the_range():
    assert nice_threshold(0.6, 0.8) == 0.7
    assert nice_threshold(0.72, 0.75) in (0.73, 0.74)
    assert nice_threshold(0.7049, 0.7055) == 0.705
    assert nice_threshold(0.2, 0.4, toward=0.4) == 0.4
    assert nice_threshold(0.5, 0.69999999995) == 0.6  # never above the data point that must stay answered
    assert 0.699999 < nice_threshold(0.699999, 0.69999999995) <= 0.69999999995


def test_the_replay_matches_the_router_on_real_answers(small, tmp_path):
    folder = write_set(tmp_path / "set")
    with serving(small.config, folder) as retriever:
        outcomes = ask_all(retriever, load_queries(folder))
        thresholds = retriever.config.thresholds
        observations = observe(outcomes, retriever.kb.records, thresholds.menu_size)
    assert decide(observations, thresholds.answer, thresholds.menu) == [o.answer.action for o in outcomes]


KB_TOML = (ROOT / "kb.toml").read_text(encoding="utf-8")


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    return [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]


def test_write_thresholds_changes_only_the_thresholds(tmp_path):
    path = tmp_path / "kb.toml"
    path.write_text(KB_TOML, encoding="utf-8")
    write_thresholds(path, 0.705, 0.5)
    after = path.read_text(encoding="utf-8")
    changed = changed_lines(KB_TOML, after)
    # The values change; the comments beside them stay, to the character.
    assert [(b.split("=")[0].strip(), b.split("#")[0].split("=")[1].strip()) for _, b in changed] == [
        ("answer", "0.705"),
        ("menu", "0.5"),
    ]
    assert [a.split("#", 1)[1] for a, _ in changed] == [b.split("#", 1)[1] for _, b in changed]
    data, original = tomllib.loads(after), tomllib.loads(KB_TOML)
    assert data["thresholds"] == {**original["thresholds"], "answer": 0.705, "menu": 0.5}
    assert {k: v for k, v in data.items() if k != "thresholds"} == {k: v for k, v in original.items() if k != "thresholds"}


def test_write_thresholds_adds_the_section_when_missing(tmp_path):
    path = tmp_path / "local.toml"
    path.write_text('content_dir = "content"\n[retrieval]\ntop_k = 100', encoding="utf-8")
    write_thresholds(path, 0.6, 0.3)
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert data == {"content_dir": "content", "retrieval": {"top_k": 100}, "thresholds": {"answer": 0.6, "menu": 0.3}}


def test_write_thresholds_keeps_an_older_clarify_setting_in_step(tmp_path):
    path = tmp_path / "old.toml"
    path.write_text("[thresholds]\nanswer = 0.8\nclarify = 0.4\n", encoding="utf-8")
    write_thresholds(path, 0.85, 0.1)
    assert tomllib.loads(path.read_text(encoding="utf-8"))["thresholds"] == {"answer": 0.85, "clarify": 0.1, "menu": 0.1}


def test_a_new_setting_goes_after_the_last_one_of_its_section(tmp_path):
    from eval.calibrate import write_settings

    path = tmp_path / "kb.toml"
    path.write_text("[confidence.zh]\nbias = -1.0  # fitted\nw_top = 2.0\n\n# thresholds\n[thresholds]\nanswer = 0.8\n")
    write_settings(path, ("confidence", "zh"), {"w_top": 3.0, "w_agree": 0.3})
    assert path.read_text() == (
        "[confidence.zh]\nbias = -1.0  # fitted\nw_top = 3.0\nw_agree = 0.3\n\n# thresholds\n[thresholds]\nanswer = 0.8\n"
    )


def test_kb_eval_calibrate_write_config(small, tmp_path, capsys):
    folder = write_set(tmp_path / "set")
    target = tmp_path / "product.toml"
    target.write_text(KB_TOML, encoding="utf-8")
    capsys.readouterr()
    assert small.cli("eval", str(folder), "--calibrate", "--target-precision", "0.9", "--write-config", str(target)) == 0
    captured = capsys.readouterr()
    assert "Precision–coverage curve" in captured.out and "joint accuracy" in captured.out
    assert f"to {target}" in captured.err
    changed = changed_lines(KB_TOML, target.read_text(encoding="utf-8"))
    assert {b.split("=")[0].strip() for _, b in changed} <= {"answer", "menu"}
    written = tomllib.loads(target.read_text(encoding="utf-8"))["thresholds"]
    assert written["menu"] <= written["answer"]
    assert written["menu_size"] == tomllib.loads(KB_TOML)["thresholds"]["menu_size"]


def test_write_config_needs_calibrate(small, tmp_path, capsys):
    assert small.cli("eval", str(write_set(tmp_path / "set")), "--write-config", str(tmp_path / "x.toml")) == 2
    assert "--write-config needs --calibrate or --fit-confidence" in capsys.readouterr().err


def scored(score: float, right: bool, language: str = "zh", margin: float = 0.05) -> Outcome:
    """A recorded answer with its whitened score and margin; ``right`` or not."""
    candidates = [RunnerUp("a", "a", score), RunnerUp("b", "b", score - margin)]
    answer = Answer(question="q", language=language, action="?", confidence=0.5, candidates=candidates)
    answer.score, answer.margin = score, margin
    return Outcome(Query("q", "a" if right else "c"), answer)


def test_fitted_confidence_rises_with_score_and_margin_and_matches_the_rate_of_right_answers():
    from eval.confidence import fit_confidence

    rng = np.random.default_rng(0)
    # The top entry is right with probability sigmoid(-3 + 5 * score + 10 * margin).
    scores, margins = rng.uniform(0.1, 0.9, 6000), rng.uniform(0.0, 0.4, 6000)
    truth = rng.random(6000) < 1 / (1 + np.exp(-(-3 + 5 * scores + 10 * margins)))
    outcomes = [scored(float(s), bool(t), margin=float(m)) for s, m, t in zip(scores, margins, truth, strict=True)]
    (fit,) = fit_confidence(outcomes, {})
    assert fit.language == "zh" and fit.questions == 6000
    assert fit.calibration.w_score == pytest.approx(5, rel=0.2) and fit.calibration.w_gap == pytest.approx(10, rel=0.2)
    assert fit.calibration.bias == pytest.approx(-3, rel=0.2) and fit.calibration.w_top == 0.0
    assert fit.held_out_auroc > 0.75
    for bin_ in fit.reliability:
        assert bin_.observed == pytest.approx(bin_.predicted, abs=0.08)


def test_too_few_questions_of_a_language_are_not_fitted():
    from eval.confidence import MIN_QUESTIONS, fit_confidence

    few = [scored(0.9, True, "en"), scored(0.7, False, "en")] * (MIN_QUESTIONS // 4)
    assert fit_confidence(few, {}) == []


def test_kb_eval_fit_confidence_writes_the_language_section(small, tmp_path, capsys):
    folder = tmp_path / "set"
    folder.mkdir()
    entries = [
        {"id": f"topic-{i}", "question": question, "alt_questions": []}
        for i, question in enumerate(["怎么开发票", "运费多少钱", "怎么修改收货地址", "积分怎么用", "怎么申请退货"])
    ]
    asked = ["我要开发票", "邮费多少", "地址填错了怎么改", "积分能抵钱吗", "东西想退", "明天会下雨吗", "股票涨了吗"]
    gold = ["topic-0", "topic-1", "topic-2", "topic-3", "topic-4", None, None]
    (folder / "kb.jsonl").write_text("\n".join(json.dumps(e, ensure_ascii=False) for e in entries), encoding="utf-8")
    queries = [{"query": q, "gold_id": g} for _ in range(8) for q, g in zip(asked, gold, strict=True)]
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(q, ensure_ascii=False) for q in queries), encoding="utf-8")
    target = tmp_path / "product.toml"
    target.write_text(KB_TOML, encoding="utf-8")
    capsys.readouterr()
    assert small.cli("eval", str(folder), "--fit-confidence", "--write-config", str(target)) == 0
    captured = capsys.readouterr()
    assert "Confidence of zh (56 questions)" in captured.out and "[confidence.zh]" in captured.err
    written, original = tomllib.loads(target.read_text(encoding="utf-8")), tomllib.loads(KB_TOML)
    assert written["confidence"]["en"] == original["confidence"]["en"]
    assert written["confidence"]["zh"]["w_score"] > 0 and written["confidence"]["zh"] != original["confidence"]["zh"]
    assert {k: v for k, v in written.items() if k != "confidence"} == {k: v for k, v in original.items() if k != "confidence"}
