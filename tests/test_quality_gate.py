"""The quality gate: the product configuration must not fall below the floors in eval/floors.toml."""

from __future__ import annotations

import tomllib

import pytest

from eval.run import evaluate
from tests.conftest import ROOT, require

FLOORS = tomllib.loads((ROOT / "eval" / "floors.toml").read_text(encoding="utf-8"))


def check(metrics: dict, floors: dict[str, float]) -> list[str]:
    """The figures below their floor, described."""
    return [f"{key} {metrics.get(key)} < floor {floor}" for key, floor in floors.items() if not (metrics.get(key) or 0) >= floor]


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
