"""The quality gate: the product configuration must not fall below the floors in eval/floors.toml."""

from __future__ import annotations

import tomllib

import pytest

from eval.run import evaluate
from tests.conftest import ROOT, require

FLOORS = tomllib.loads((ROOT / "eval" / "floors.toml").read_text(encoding="utf-8"))


def check(metrics: dict, floors: dict[str, float]) -> list[str]:
    """The figures below their floor (above their ceiling, for a key ending in ``_max``), described."""
    failures = []
    for key, limit in floors.items():
        if key.endswith("_max"):
            name = key.removesuffix("_max")
            value = metrics.get(name)
            if value is None or not value <= limit:  # NaN or missing fails too
                failures.append(f"{name} {value} > ceiling {limit}")
        elif not (metrics.get(key) or 0) >= limit:
            failures.append(f"{key} {metrics.get(key)} < floor {limit}")
    return failures


@pytest.mark.parametrize("folder", sorted(FLOORS))
def test_quality_does_not_drop_below_the_floors(folder, sample_config):
    path = ROOT / folder
    require(path.exists(), f"the question set {folder}", "the dev sets come in ../shared/eval beside the repository")
    assert check(evaluate(sample_config, path), FLOORS[folder]) == []


def test_the_gate_fails_on_a_lowered_figure():
    floors = {"recall_at_1": 0.9, "money_recall": 1.0}
    assert check({"recall_at_1": 0.95, "money_recall": 1.0}, floors) == []
    assert check({"recall_at_1": 0.85, "money_recall": 1.0}, floors) == ["recall_at_1 0.85 < floor 0.9"]
    assert check({"recall_at_1": 0.95}, floors) == ["money_recall None < floor 1.0"]


def test_a_ceiling_fails_on_a_raised_figure():
    assert check({"oos_answered": 0.02}, {"oos_answered_max": 0.03}) == []
    assert check({"oos_answered": 0.05}, {"oos_answered_max": 0.03}) == ["oos_answered 0.05 > ceiling 0.03"]
    assert check({}, {"oos_answered_max": 0.03}) == ["oos_answered None > ceiling 0.03"]
