"""``kb eval DIR --calibrate``: the answer and menu thresholds, chosen together: answered
precision at or above a target with the highest coverage, and menus down to where they stop
offering the right entry.

The questions are asked once; every pair of thresholds is then replayed on the recorded
confidences with the router's rule (:func:`retriever.routing.route`):

- confidence ≥ ``answer`` → answer; else confidence ≥ ``menu`` → a menu of the first
  ``menu_size`` entries; else hand off;
- a money question or a money entry on top is handed off whatever the thresholds.

The answer threshold is the one with the highest coverage at the target precision; the menu
threshold the lowest at which the menus shown (confidence in [menu, answer)) still hold the right
entry for at least :data:`MENU_TARGET` of the questions: a menu that rarely holds it only delays
the person the customer needs. To guard against over-fitting, thresholds are chosen on the
even-numbered questions (2nd, 4th, ...) and the figures that matter are reported on the
odd-numbered ones.
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

MENU_TARGET = 0.5
"""Share of the menus that must offer the right entry, at the lowest menu threshold chosen."""

NEVER_CLARIFY = 1.01
"""A threshold above every confidence (they are probabilities): no menus."""

CURVE_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
"""The answer thresholds of the printed precision–coverage table (the chart shows every one)."""


@dataclass(frozen=True)
class Observation:
    """What the thresholds act on, for one question."""

    confidence: float
    blocked: bool
    """Handed off for money whatever the thresholds."""
    top: str | None
    gold: str | None
    helpful: bool
    """The right entry is one of those a menu would offer."""


def observe(outcomes: list[Outcome], records: dict[str, list[Record]], menu_size: int = 3) -> list[Observation]:
    """The recorded answers as observations; ``records`` (the build's) say which entries are money ones."""
    found = []
    for outcome in outcomes:
        candidates = outcome.answer.candidates
        top = candidates[0].entry_id if candidates else None
        money_top = top is not None and any(r.money for r in records.get(top, ()))
        gold = outcome.query.gold_id
        found.append(
            Observation(
                confidence=float(outcome.answer.confidence),
                blocked=outcome.answer.handoff_reason == "money" or money_top,
                top=top,
                gold=gold,
                helpful=gold is not None and gold in [c.entry_id for c in candidates[:menu_size]],
            )
        )
    return found


def split(items: list) -> tuple[list, list]:
    """(calibration half, held-out half): the even-numbered items (2nd, 4th, ...), then the odd ones."""
    return items[1::2], items[0::2]


def decide(observations: list[Observation], answer: float, menu: float) -> list[str]:
    """The router's action for each observation at these thresholds (money handoffs included)."""
    return [
        route(o.confidence, answer, menu, has_candidates=o.top is not None, money_question=o.blocked)[0] for o in observations
    ]


@dataclass
class Figures:
    """Figures at one pair of thresholds, on one half of the questions."""

    coverage: float
    answered_precision: float
    accuracy: float
    """Joint accuracy: in scope answered right, or out of scope not answered, over all questions."""
    answerable_coverage: float
    """Share answered of the questions the bot may answer (in scope, not handed off for money)."""
    menu_rate: float
    """Share of the questions that get a menu."""
    menu_helpful: float
    """Share of the menus that offer the right entry."""
    resolved: float
    """Share of the in-scope questions answered right or offered the right entry in a menu."""
    n: int


def figures(observations: list[Observation], answer: float, menu: float) -> Figures:
    actions = decide(observations, answer, menu)
    answered = [a == "answer" for a in actions]
    answerable = [o.gold is not None and not o.blocked for o in observations]
    metrics = answer_metrics(answered, [o.top for o in observations], [o.gold for o in observations], answerable)
    offered = [o for o, a in zip(observations, actions, strict=True) if a == "menu"]
    in_scope = [(o, a) for o, a in zip(observations, actions, strict=True) if o.gold is not None]
    resolved = sum((a == "answer" and o.top == o.gold) or (a == "menu" and o.helpful) for o, a in in_scope)
    n = len(observations)
    return Figures(
        coverage=metrics["coverage"],
        answered_precision=metrics["answered_precision"],
        accuracy=metrics["accuracy"],
        answerable_coverage=metrics["answerable_coverage"],
        menu_rate=len(offered) / n if n else float("nan"),
        menu_helpful=sum(o.helpful for o in offered) / len(offered) if offered else float("nan"),
        resolved=resolved / len(in_scope) if in_scope else float("nan"),
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


def sweep(observations: list[Observation]) -> Sweep:
    """Precision and coverage for every answer threshold at once (cumulative counts over the
    questions sorted by confidence)."""
    confidence = np.array([o.confidence for o in observations], dtype=float)
    eligible = np.array([not o.blocked for o in observations], dtype=bool)
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
    menu: float | None
    configured: ThresholdConfig
    calibration: Figures | None = None
    """At the chosen thresholds, on the half they were chosen on."""
    held_out: Figures | None = None
    """At the chosen thresholds, on the other half: the figures to believe."""
    configured_held_out: Figures | None = None
    """At the configured thresholds, on the held-out half, for comparison."""
    curve: list[CurvePoint] = field(default_factory=list)
    """Answer threshold → precision and coverage (menu threshold as chosen)."""
    full_curve: tuple[Sweep, Sweep] | None = None
    """Every threshold, calibration and held-out halves: for the chart."""
    best_precision: float = float("nan")
    """When the target is out of reach: the highest precision on the calibration half."""
    most_accurate: tuple[float, float] | None = None
    """The (answer, menu) thresholds with the highest joint accuracy on the calibration half,
    whatever the precision: the other operating point worth knowing."""
    most_accurate_held_out: Figures | None = None

    @property
    def found(self) -> bool:
        return self.answer is not None

    @property
    def clarify(self) -> float | None:
        """The old name of ``menu``."""
        return self.menu

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
    menu_target: float = MENU_TARGET,
) -> Calibration:
    """The answer threshold with the highest coverage at answered precision ≥ ``target`` on the
    calibration half, the menu threshold below it, and what they give on the held-out half."""
    observations = observe(outcomes, records, configured.menu_size)
    fit, held = split(observations)
    curve = sweep(fit)
    highest = float(curve.precision.max()) if len(curve.precision) else float("nan")
    result = Calibration(target, None, None, configured, best_precision=highest)
    result.configured_held_out = figures(held, configured.answer, configured.menu)
    result.full_curve = (curve, sweep(held))
    result.most_accurate = _most_accurate(fit, curve, menu_target)
    if result.most_accurate is not None:
        result.most_accurate_held_out = figures(held, *result.most_accurate)
    ok = np.flatnonzero(curve.precision >= target - 1e-12)
    if not len(ok):
        return result
    threshold = float(curve.thresholds[ok[np.argmax(curve.coverage[ok])]])
    answer = _nice(fit, threshold)
    menu = menu_threshold(fit, answer, menu_target)
    result.answer, result.menu = answer, menu
    result.calibration = figures(fit, answer, menu)
    result.held_out = figures(held, answer, menu)
    for point in sorted({*CURVE_THRESHOLDS, answer}):
        on_fit, on_held = figures(fit, point, min(menu, point)), figures(held, point, min(menu, point))
        result.curve.append(
            CurvePoint(point, on_fit.answered_precision, on_fit.coverage, on_held.answered_precision, on_held.coverage)
        )
    return result


def _nice(fit: list[Observation], threshold: float) -> float:
    """A round answer threshold that makes the same decisions as ``threshold`` on ``fit``."""
    eligible = np.array([o.confidence for o in fit if not o.blocked])
    return nice_threshold(_lower_neighbour(eligible, threshold), threshold)


def _most_accurate(fit: list[Observation], curve: Sweep, menu_target: float) -> tuple[float, float] | None:
    """Thresholds with the highest joint accuracy on ``fit`` (and the menu below them)."""
    if not len(curve.accuracy):
        return None
    answer = _nice(fit, float(curve.thresholds[int(np.argmax(curve.accuracy))]))
    return answer, menu_threshold(fit, answer, menu_target)


def menu_threshold(fit: list[Observation], answer: float, target: float = MENU_TARGET) -> float:
    """The lowest menu threshold (at most ``answer``) at which the menus shown, all of them, offer
    the right entry at the ``target`` rate; ``answer`` (no menus) when none does."""
    shown = sorted((o for o in fit if not o.blocked and o.top is not None and o.confidence < answer), key=lambda o: -o.confidence)
    helpful, chosen = 0, answer
    for position, o in enumerate(shown):
        helpful += o.helpful
        last_of_value = position + 1 == len(shown) or shown[position + 1].confidence < o.confidence
        if last_of_value and helpful / (position + 1) >= target - 1e-12:
            chosen = o.confidence
    if chosen == answer:
        return answer
    values = np.array([o.confidence for o in shown])
    return min(nice_threshold(_lower_neighbour(values, chosen), chosen, toward=chosen), answer)


def write_thresholds(path: Path, answer: float, menu: float) -> None:
    """Set ``[thresholds] answer`` and ``menu`` in the TOML file at ``path`` (an older ``clarify``
    setting there is set too, so that the file says one thing)."""
    values = {"answer": answer, "menu": menu}
    existing = _lookup(tomllib.loads(Path(path).read_text(encoding="utf-8")), ("thresholds",)) if Path(path).exists() else None
    if isinstance(existing, dict) and "clarify" in existing:
        values["clarify"] = menu
    write_settings(path, ("thresholds",), values)


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
