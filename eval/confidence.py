"""``kb eval DIR --fit-confidence``: fit the confidence of each language on labelled questions.

The confidence is ``sigmoid(bias + w_top · similarity + w_gap · margin + w_agree · agreement)``
(:mod:`retriever.confidence`): the probability that the top entry is the right one. It is fitted
as a logistic regression of "the top entry is right" (an out-of-scope question never is) on one
feature, ``similarity + share · margin + agreement_share · agreement``, so that ``w_gap = share ·
w_top`` and ``w_agree = agreement_share · w_top``. The shares are kept small and fixed rather
than fitted, because the customer sets are small:

- a larger margin share separates right from wrong answers slightly better, but in-scope from
  out-of-scope questions worse;
- the agreement (the share of embedders whose own ranking puts the top entry first) raised the
  AUROC of right against the rest on all four sets measured, Chinese and English (0.918 → 0.932
  on customer_zh); a share above 0.1 cost answered precision on customer_zh.

As for the thresholds, it is fitted on the even-numbered questions (2nd, 4th, ...) and checked
on the odd-numbered ones: the AUROC of the confidence for "right" against the rest, and a
reliability table (predicted confidence against the share that was right).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from eval.calibrate import split
from eval.metrics import auroc
from eval.run import Outcome
from kb.config import ConfidenceConfig
from retriever import confidence

MARGIN_SHARE = 0.15
"""The margin's weight relative to the similarity's."""
AGREEMENT_SHARE = 0.1
"""The agreement's weight relative to the similarity's."""
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


def fit_confidence(
    outcomes: list[Outcome],
    configured: dict[str, ConfidenceConfig],
    share: float = MARGIN_SHARE,
    agreement_share: float = AGREEMENT_SHARE,
) -> list[LanguageFit]:
    """One fit per language with enough questions (in the order first met)."""
    languages = list(dict.fromkeys(o.answer.language for o in outcomes))
    fits = []
    for language in languages:
        mine = [o for o in outcomes if o.answer.language == language]
        if len(mine) < MIN_QUESTIONS:
            continue
        fit_half, held = split(mine)
        calibration = _logistic(fit_half, share, agreement_share)
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


def _feature(outcome: Outcome, share: float, agreement_share: float) -> float:
    answer = outcome.answer
    return answer.similarity + share * answer.margin + agreement_share * answer.agreement


def _logistic(outcomes: list[Outcome], share: float, agreement_share: float) -> ConfidenceConfig | None:
    """Maximum likelihood fit of ``sigmoid(a + b · feature)`` (Newton's method; both classes
    needed)."""
    x = np.array([_feature(o, share, agreement_share) for o in outcomes if o.answer.candidates])
    y = np.array([_right(o) for o in outcomes if o.answer.candidates], dtype=float)
    if len(x) < 2 or y.min() == y.max():
        return None
    design = np.column_stack([np.ones_like(x), x])
    theta = np.zeros(2)
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(design @ theta)))
        gradient = design.T @ (y - p)
        hessian = design.T @ (design * (p * (1 - p))[:, None]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        theta += step
        if np.abs(step).max() < 1e-8:
            break
    bias, weight = (round(float(v), 2) for v in theta)
    return ConfidenceConfig(bias=bias, w_top=weight, w_gap=round(weight * share, 2), w_agree=round(weight * agreement_share, 2))


def _confidence(outcome: Outcome, calibration: ConfidenceConfig) -> float:
    if not outcome.answer.candidates:
        return 0.0
    answer = outcome.answer
    return confidence(answer.similarity, answer.margin, answer.agreement, calibration)


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
