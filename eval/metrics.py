"""Retrieval and abstention metrics, on plain lists so that they are easy to check by hand."""

from __future__ import annotations

import math
from collections.abc import Sequence


def recall_at(ranked: Sequence[Sequence[str]], gold: Sequence[str], k: int) -> float:
    """Share of questions whose right entry is among the first ``k``."""
    if not gold:
        return float("nan")
    return sum(g in list(r)[:k] for r, g in zip(ranked, gold, strict=False)) / len(gold)


def mean_reciprocal_rank(ranked: Sequence[Sequence[str]], gold: Sequence[str]) -> float:
    """Mean of 1/rank of the right entry (0 when it is not in the list)."""
    if not gold:
        return float("nan")
    total = 0.0
    for r, g in zip(ranked, gold, strict=False):
        r = list(r)
        total += 1.0 / (r.index(g) + 1) if g in r else 0.0
    return total / len(gold)


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float | None:
    """Probability that a positive scores above a negative, ties counting half (Mann-Whitney U).

    ``None`` when either side is empty.
    """
    if not positive or not negative:
        return None
    scored = sorted([(s, 1) for s in positive] + [(s, 0) for s in negative])
    rank_sum, i = 0.0, 0
    while i < len(scored):
        j = i
        while j < len(scored) and scored[j][0] == scored[i][0]:
            j += 1
        average = (i + 1 + j) / 2  # mean of ranks i+1 .. j
        rank_sum += average * sum(label for _, label in scored[i:j])
        i = j
    n_pos, n_neg = len(positive), len(negative)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100), linear between closest ranks."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def answer_metrics(
    answered: Sequence[bool],
    predicted: Sequence[str | None],
    gold: Sequence[str | None],
    answerable: Sequence[bool] | None = None,
) -> dict[str, float]:
    """Coverage (share answered), answered precision (right among answered) and joint accuracy
    (in scope answered right, or out of scope not answered, over all questions).

    With ``answerable`` (the questions the bot may answer itself: in scope and not about money),
    also the coverage of those: coverage counts the questions no entry answers and the money ones
    as not answered, so on a set with many of them it cannot come near 1.
    """
    n = len(gold)
    n_answered = sum(answered)
    right = sum(a and p == g for a, p, g in zip(answered, predicted, gold, strict=False) if g is not None)
    abstained_oos = sum(not a for a, g in zip(answered, gold, strict=False) if g is None)
    metrics = {
        "coverage": n_answered / n if n else float("nan"),
        "answered_precision": right / n_answered if n_answered else float("nan"),
        "accuracy": (right + abstained_oos) / n if n else float("nan"),
    }
    if answerable is not None:
        n_answerable = sum(answerable)
        covered = sum(a and ok for a, ok in zip(answered, answerable, strict=True))
        metrics["answerable_coverage"] = covered / n_answerable if n_answerable else float("nan")
    return metrics
