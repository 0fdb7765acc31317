"""``kb eval DIR --calibrate``: the answer and clarify thresholds that keep answered precision at
or above a target with the highest coverage.

The questions are asked once; every pair of thresholds is then replayed on the recorded
confidences with the router's rule (:func:`retriever.routing.route`):

- a near tie (top two within ``clarify_gap``) with confidence ≥ ``clarify`` → clarify;
- otherwise confidence ≥ ``answer`` → answer; else hand off;
- a money question or a money entry on top is handed off whatever the thresholds.

Two shapes are searched: near ties are asked about (``clarify ≤ answer``: a near tie is never
answered) or answered like any other question (``clarify`` above every confidence). The clarify
threshold is then the lowest at which clarifying questions still offer the right entry at the
target rate. To guard against over-fitting, thresholds are chosen on the even-numbered
questions (2nd, 4th, ...) and the figures that matter are reported on the odd-numbered ones.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tomlkit
import tomlkit.items

from eval.metrics import answer_metrics
from eval.run import Outcome
from kb.config import ThresholdConfig
from kb.model import Record
from retriever.routing import route

NEVER_CLARIFY = 1.01
"""A clarify threshold above every confidence (they are probabilities): near ties are answered."""

CURVE_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
"""The answer thresholds of the printed precision–coverage table (the chart shows every one)."""


@dataclass(frozen=True)
class Observation:
    """What the thresholds act on, for one question."""

    confidence: float
    close: bool
    """The top two are within ``clarify_gap``: a candidate for a clarifying question."""
    blocked: bool
    """Handed off for money whatever the thresholds."""
    top: str | None
    gold: str | None
    helpful: bool
    """The right entry is one of the two a clarifying question would offer."""


def observe(outcomes: list[Outcome], records: dict[str, list[Record]], clarify_gap: float) -> list[Observation]:
    """The recorded answers as observations; ``records`` (the build's) say which entries are money ones."""
    found = []
    for outcome in outcomes:
        candidates = outcome.answer.candidates
        top = candidates[0].entry_id if candidates else None
        # Candidate scores are rounded to 4 decimals: a gap within 0.0001 of clarify_gap may be misread.
        close = len(candidates) > 1 and float(candidates[0].score) - float(candidates[1].score) < clarify_gap
        money_top = top is not None and any(r.money for r in records.get(top, ()))
        gold = outcome.query.gold_id
        found.append(
            Observation(
                confidence=float(outcome.answer.confidence),
                close=close,
                blocked=outcome.answer.handoff_reason == "money" or money_top,
                top=top,
                gold=gold,
                helpful=gold is not None and gold in [c.entry_id for c in candidates[:2]],
            )
        )
    return found


def split(items: list) -> tuple[list, list]:
    """(calibration half, held-out half): the even-numbered items (2nd, 4th, ...), then the odd ones."""
    return items[1::2], items[0::2]


def decide(observations: list[Observation], answer: float, clarify: float) -> list[str]:
    """The router's action for each observation at these thresholds (money handoffs included)."""
    return [route(o.confidence, o.close, answer, clarify, money_question=o.blocked)[0] for o in observations]


@dataclass
class Figures:
    """Figures at one pair of thresholds, on one half of the questions."""

    coverage: float
    answered_precision: float
    accuracy: float
    """Joint accuracy: in scope answered right, or out of scope not answered, over all questions."""
    answerable_coverage: float
    """Share answered of the questions the bot may answer (in scope, not handed off for money)."""
    clarified: float
    """Share of the questions that get a clarifying question."""
    clarify_helpful: float
    """Share of clarifying questions that offer the right entry."""
    n: int


def figures(observations: list[Observation], answer: float, clarify: float) -> Figures:
    actions = decide(observations, answer, clarify)
    answered = [a == "answer" for a in actions]
    answerable = [o.gold is not None and not o.blocked for o in observations]
    metrics = answer_metrics(answered, [o.top for o in observations], [o.gold for o in observations], answerable)
    asked = [o for o, a in zip(observations, actions, strict=True) if a == "clarify"]
    n = len(observations)
    return Figures(
        coverage=metrics["coverage"],
        answered_precision=metrics["answered_precision"],
        accuracy=metrics["accuracy"],
        answerable_coverage=metrics["answerable_coverage"],
        clarified=len(asked) / n if n else float("nan"),
        clarify_helpful=sum(o.helpful for o in asked) / len(asked) if asked else float("nan"),
        n=n,
    )


@dataclass
class Sweep:
    """Answered precision and coverage at each answer threshold (every distinct confidence)."""

    thresholds: np.ndarray
    """Descending."""
    precision: np.ndarray
    coverage: np.ndarray
    accuracy: np.ndarray
    """Joint accuracy: in scope answered right, or out of scope not answered."""


def sweep(observations: list[Observation], ask_near_ties: bool) -> Sweep:
    """Precision and coverage for every answer threshold at once (cumulative counts over the
    questions sorted by confidence). With ``ask_near_ties`` a near tie is never answered."""
    confidence = np.array([o.confidence for o in observations], dtype=float)
    eligible = np.array([not o.blocked and not (ask_near_ties and o.close) for o in observations], dtype=bool)
    right = np.array([o.gold is not None and o.top == o.gold for o in observations], dtype=bool) & eligible
    out_of_scope = np.array([o.gold is None for o in observations], dtype=bool)
    order = np.argsort(-confidence, kind="stable")
    descending = confidence[order]
    thresholds = np.unique(confidence[eligible])[::-1]
    if not len(thresholds):
        return Sweep(thresholds, np.zeros(0), np.zeros(0), np.zeros(0))
    at_or_above = np.searchsorted(-descending, -thresholds, side="right")  # questions with confidence ≥ threshold
    answered = np.cumsum(eligible[order])[at_or_above - 1]
    correct = np.cumsum(right[order])[at_or_above - 1]
    abstained = out_of_scope.sum() - np.cumsum((eligible & out_of_scope)[order])[at_or_above - 1]
    n = len(observations)
    return Sweep(thresholds, correct / np.maximum(answered, 1), answered / n, (correct + abstained) / n)


def nice_threshold(low: float, high: float, toward: float | None = None) -> float:
    """A short decimal in ``(low, high]``, nearest ``toward`` (default: the middle): every
    threshold in that range makes the same decisions on the calibration half, and a round number
    reads better in a config file."""
    middle = (low + high) / 2 if toward is None else toward
    for digits in range(1, 7):
        step = 10.0**-digits
        options = [round(i * step, digits) for i in range(math.floor(low / step), math.floor(high / step) + 2)]
        options = [x for x in options if low < x <= high]
        if options:
            return min(options, key=lambda x: (abs(x - middle), x))
    return high


def _lower_neighbour(values: np.ndarray, value: float) -> float:
    below = values[values < value]
    return float(below.max()) if len(below) else 0.0


@dataclass
class CurvePoint:
    threshold: float
    precision: float
    coverage: float
    held_out_precision: float
    held_out_coverage: float


@dataclass
class Calibration:
    target: float
    answer: float | None
    """The chosen thresholds; None when no answer threshold reaches the target."""
    clarify: float | None
    ask_near_ties: bool
    configured: ThresholdConfig
    calibration: Figures | None = None
    """At the chosen thresholds, on the half they were chosen on."""
    held_out: Figures | None = None
    """At the chosen thresholds, on the other half: the figures to believe."""
    configured_held_out: Figures | None = None
    """At the configured thresholds, on the held-out half, for comparison."""
    curve: list[CurvePoint] = field(default_factory=list)
    """Answer threshold → precision and coverage (chosen near-tie handling and clarify threshold)."""
    full_curve: tuple[Sweep, Sweep] | None = None
    """Every threshold, calibration and held-out halves: for the chart."""
    best_precision: float = float("nan")
    """When the target is out of reach: the highest precision on the calibration half."""
    most_accurate: tuple[float, float] | None = None
    """The (answer, clarify) thresholds with the highest joint accuracy on the calibration half,
    whatever the precision: the other operating point worth knowing."""
    most_accurate_held_out: Figures | None = None

    @property
    def found(self) -> bool:
        return self.answer is not None

    def to_dict(self) -> dict[str, Any]:
        """For ``kb eval --json``: everything but the full curve."""
        data = asdict(self)
        del data["full_curve"]
        return _json_ready(data)


def _json_ready(value: Any) -> Any:
    """NaN (no figure) as None, so that the JSON is valid."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def calibrate(
    outcomes: list[Outcome],
    records: dict[str, list[Record]],
    configured: ThresholdConfig,
    target: float = 0.95,
) -> Calibration:
    """The thresholds with the highest coverage at answered precision ≥ ``target`` on the
    calibration half, and what they give on the held-out half."""
    observations = observe(outcomes, records, configured.clarify_gap)
    fit, held = split(observations)
    best: tuple[float, bool, float] | None = None  # coverage, ask near ties, threshold
    highest = float("nan")
    for ask in (True, False):  # on equal coverage, asking about near ties wins (it helps more customers)
        curve = sweep(fit, ask)
        if len(curve.precision):
            highest = float(np.nanmax([highest, curve.precision.max()]))
        ok = np.flatnonzero(curve.precision >= target - 1e-12)
        if len(ok):
            i = ok[np.argmax(curve.coverage[ok])]
            if best is None or curve.coverage[i] > best[0]:
                best = (float(curve.coverage[i]), ask, float(curve.thresholds[i]))
    result = Calibration(target, None, None, True, configured, best_precision=highest)
    result.configured_held_out = figures(held, configured.answer, configured.clarify)
    result.most_accurate = _most_accurate(fit, configured.clarify)
    if result.most_accurate is not None:
        result.most_accurate_held_out = figures(held, *result.most_accurate)
    if best is None:
        result.full_curve = (sweep(fit, True), sweep(held, True))
        return result
    _, ask, threshold = best
    answer = _nice(fit, ask, threshold)
    clarify = _clarify_threshold(fit, answer, target, configured.clarify) if ask else NEVER_CLARIFY
    result.answer, result.clarify, result.ask_near_ties = answer, clarify, ask
    result.calibration = figures(fit, answer, clarify)
    result.held_out = figures(held, answer, clarify)
    result.full_curve = (sweep(fit, ask), sweep(held, ask))
    for point in sorted({*CURVE_THRESHOLDS, answer}):
        near_ties = min(clarify, point) if ask else clarify  # keep the chosen handling of near ties
        on_fit, on_held = figures(fit, point, near_ties), figures(held, point, near_ties)
        result.curve.append(
            CurvePoint(point, on_fit.answered_precision, on_fit.coverage, on_held.answered_precision, on_held.coverage)
        )
    return result


def _nice(fit: list[Observation], ask: bool, threshold: float) -> float:
    """A round answer threshold that makes the same decisions as ``threshold`` on ``fit``."""
    eligible = np.array([o.confidence for o in fit if not o.blocked and not (ask and o.close)])
    return nice_threshold(_lower_neighbour(eligible, threshold), threshold)


def _most_accurate(fit: list[Observation], current_clarify: float) -> tuple[float, float] | None:
    """Thresholds with the highest joint accuracy on ``fit`` (near ties asked about on a tie)."""
    best: tuple[float, bool, float] | None = None
    for ask in (True, False):
        curve = sweep(fit, ask)
        if len(curve.accuracy):
            i = int(np.argmax(curve.accuracy))
            if best is None or curve.accuracy[i] > best[0]:
                best = (float(curve.accuracy[i]), ask, float(curve.thresholds[i]))
    if best is None:
        return None
    _, ask, threshold = best
    answer = _nice(fit, ask, threshold)
    return answer, (min(current_clarify, answer) if ask else NEVER_CLARIFY)


def _clarify_threshold(fit: list[Observation], answer: float, target: float, current: float) -> float:
    """The lowest clarify threshold (at most ``answer``) at which the clarifying questions offer
    the right entry at the target rate; ``answer`` when none does (near ties that would have been
    answered are asked about, the rest handed off); the ``current`` one (capped at ``answer``)
    when the calibration half has no near tie below ``answer`` to decide on."""
    ties = sorted((o for o in fit if o.close and not o.blocked and o.confidence < answer), key=lambda o: -o.confidence)
    if not ties:
        return min(current, answer)
    above = [o for o in fit if o.close and not o.blocked and o.confidence >= answer]
    helpful, asked = sum(o.helpful for o in above), len(above)
    chosen = answer
    for position, tie in enumerate(ties):
        helpful, asked = helpful + tie.helpful, asked + 1
        last_of_value = position + 1 == len(ties) or ties[position + 1].confidence < tie.confidence
        if last_of_value and helpful / asked >= target - 1e-12:
            chosen = tie.confidence
    if chosen == answer:
        return answer
    # Nearest the lowest near tie asked about: no lower than the data supports.
    values = np.array([o.confidence for o in ties])
    return min(nice_threshold(_lower_neighbour(values, chosen), chosen, toward=chosen), answer)


def write_thresholds(path: Path, answer: float, clarify: float) -> None:
    """Set ``[thresholds] answer`` and ``clarify`` in the TOML file at ``path``."""
    write_settings(path, ("thresholds",), {"answer": answer, "clarify": clarify})


def write_settings(path: Path, section: tuple[str, ...], values: dict[str, float]) -> None:
    """Set ``values`` in the ``section`` (``("thresholds",)``, ``("confidence", "zh")``) of the
    TOML file at ``path``, leaving everything else (comments and layout included) as it was; the
    section is added when missing."""
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    tomllib.loads(text)  # refuse to edit a file that is not valid TOML (a ValueError)
    document = tomlkit.parse(text)
    table: Any = document
    for depth, key in enumerate(section):
        if key not in table:
            new = tomlkit.table(is_super_table=depth < len(section) - 1)
            if table is document and text.strip():  # at the end of the file, after a blank line
                for _ in range(2 - min(2, len(text) - len(text.rstrip("\n")))):
                    document.add(tomlkit.nl())
            elif not new.is_super_table():
                new.add(tomlkit.nl())  # among its parent's tables: a blank line before the next one
            table[key] = new
        table = table[key]
        if not isinstance(table, dict):
            raise ValueError(f"{path}: {'.'.join(section[: depth + 1])} is not a table; edit it by hand")
    for key, value in values.items():
        if key in table:
            table[key] = value  # tomlkit keeps the comment beside the value
        else:
            _add_after_last_setting(table, key, value)
    updated = tomlkit.dumps(document)
    written = _lookup(tomllib.loads(updated), section) or {}
    if any(written.get(k) != v for k, v in values.items()):
        raise ValueError(f"{path}: could not set [{'.'.join(section)}] safely; edit it by hand")
    path.write_text(updated, encoding="utf-8")


def _add_after_last_setting(table: Any, key: str, value: float) -> None:
    """Add ``key`` right after the table's last setting, before the blank lines and comments that
    end it (they introduce the next section), so that keys keep the order they were added in."""
    container = table.value if isinstance(table, (tomlkit.items.Table, tomlkit.items.InlineTable)) else table
    body = container.body  # (key, item); None for a blank line or a comment
    trailing = []
    while body and body[-1][0] is None:
        trailing.append(body.pop()[1])
    table[key] = value
    for item in reversed(trailing):
        container.add(item)


def _lookup(data: dict, section: tuple[str, ...]) -> Any:
    for key in section:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data
