"""``kb eval DIR --fit-confidence``: fit the confidence of each language on labelled questions.

The confidence is ``sigmoid(bias + w_score · score + w_gap · margin)`` (:mod:`retriever.confidence`;
``w_top`` and ``w_agree`` are left at 0): the probability that the top entry is the right one,
fitted as a logistic regression of "the top entry is right" (an out-of-scope question never is)
on the top entry's whitened fused score and its lead over the runner-up.

Measured on real customers' questions (jddc_zh_dev, clinc150_en, banking77_en) and the customer
sets: those two separate right answers from the rest better than the raw similarity, the
agreement of the embedders, the keyword score, the margin over the third, the share of the
nearest phrases that belong to the top entry or scales set per knowledge base by asking its own
phrasings with each one left out (none of these added AUROC on all five sets together).

It is fitted on the even-numbered questions (2nd, 4th, ...) and checked on the odd-numbered ones:
the AUROC of the confidence for "right" against the rest, and a reliability table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from eval.calibrate import split
from eval.metrics import auroc
from eval.run import Outcome
from kb.config import ConfidenceConfig
from retriever import confidence

MIN_QUESTIONS = 40
"""Fewer questions of a language than this are not enough to fit its confidence."""


@dataclass
class Reliability:
    low: float
    high: float
    questions: int
    predicted: float
    observed: float


@dataclass
class LanguageFit:
    language: str
    calibration: ConfidenceConfig
    questions: int
    held_out_auroc: float | None
    """AUROC on the held-out half, right top entry against the rest, with the new calibration."""
    configured_auroc: float | None
    """The same with the configured calibration, for comparison."""
    reliability: list[Reliability] = field(default_factory=list)
    """Held-out half, by bins of predicted confidence."""


def fit_confidence(outcomes: list[Outcome], configured: dict[str, ConfidenceConfig]) -> list[LanguageFit]:
    """One fit per language with enough questions (in the order first met)."""
    languages = list(dict.fromkeys(o.answer.language for o in outcomes))
    fits = []
    for language in languages:
        mine = [o for o in outcomes if o.answer.language == language]
        if len(mine) < MIN_QUESTIONS:
            continue
        fit_half, held = split(mine)
        calibration = _logistic(fit_half)
        if calibration is None:
            continue
        fits.append(
            LanguageFit(
                language,
                calibration,
                len(mine),
                _auroc(held, calibration),
                _auroc(held, configured.get(language, ConfidenceConfig())),
                _reliability(held, calibration),
            )
        )
    return fits


def _right(outcome: Outcome) -> bool:
    ranking = outcome.ranking
    return outcome.query.gold_id is not None and bool(ranking) and ranking[0] == outcome.query.gold_id


def _features(outcome: Outcome) -> list[float]:
    return [outcome.answer.score, outcome.answer.margin]


def _logistic(outcomes: list[Outcome]) -> ConfidenceConfig | None:
    """Maximum likelihood fit of ``sigmoid(a + b · score + c · margin)`` (Newton's method, a
    little ridge so that separable data stays finite; both classes needed)."""
    x = np.array([_features(o) for o in outcomes if o.answer.candidates], dtype=float).reshape(-1, 2)
    y = np.array([_right(o) for o in outcomes if o.answer.candidates], dtype=float)
    if len(x) < 2 or y.min() == y.max():
        return None
    design = np.column_stack([np.ones(len(x)), x])
    theta = np.zeros(3)
    ridge = 1e-3 * np.eye(3)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(design @ theta)))
        gradient = design.T @ (y - p) - ridge @ theta
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + ridge
        step = np.linalg.solve(hessian, gradient)
        theta += step
        if np.abs(step).max() < 1e-8:
            break
    bias, w_score, w_gap = (round(float(v), 2) for v in theta)
    return ConfidenceConfig(bias=bias, w_score=w_score, w_gap=w_gap, w_top=0.0, w_agree=0.0)


def _confidence(outcome: Outcome, calibration: ConfidenceConfig) -> float:
    if not outcome.answer.candidates:
        return 0.0
    answer = outcome.answer
    return confidence(answer.similarity, answer.margin, answer.agreement, calibration, answer.score)


def _auroc(outcomes: list[Outcome], calibration: ConfidenceConfig) -> float | None:
    right = [_confidence(o, calibration) for o in outcomes if _right(o)]
    rest = [_confidence(o, calibration) for o in outcomes if not _right(o)]
    return auroc(right, rest)


def _reliability(outcomes: list[Outcome], calibration: ConfidenceConfig, bins: int = 5) -> list[Reliability]:
    rows = []
    edges = np.linspace(0, 1, bins + 1)
    scored = [(_confidence(o, calibration), _right(o)) for o in outcomes]
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = [(c, r) for c, r in scored if low <= c < high or (high == 1 and c == 1)]
        if inside:
            rows.append(
                Reliability(
                    float(low),
                    float(high),
                    len(inside),
                    float(np.mean([c for c, _ in inside])),
                    float(np.mean([r for _, r in inside])),
                )
            )
    return rows
