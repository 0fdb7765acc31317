"""The service figures editors watch, per day and channel: questions, the share resolved by the
bot, the handoff rate by reason, escalations and the "solved" feedback rate. Pure functions over
the store's records (the question log, tickets, feedback), counted with :mod:`bots.report`'s rules."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo

from bots.report.analysis import handoffs_by_period, is_question
from bots.store import FeedbackEvent, LoggedQuestion, Ticket
from kb.vocabulary import Outcome

RESOLVED_OUTCOMES = (Outcome.ANSWER, Outcome.ORDER)
"""Answered from the knowledge base (a menu pick is logged as an answer too) or from the order system."""

CHANNEL_FIGURES = ("questions", "resolved", "handoffs", "escalations", "solved", "feedback")


@dataclass
class Figures:
    days: list[date]
    questions: list[int]
    resolved: list[int]
    handoffs: dict[str, list[int]]
    """Tickets opened per day, by handoff reason."""
    escalations: list[int]
    solved: list[int]
    feedback: list[int]
    channels: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per channel over the whole period: questions, resolved, handoffs, escalations, solved, feedback."""

    def share(self, part: list[int], whole: list[int]) -> list[float | None]:
        """Day by day, as a fraction; None on a day with nothing to divide by."""
        return [p / w if w else None for p, w in zip(part, whole, strict=True)]

    @property
    def empty(self) -> bool:
        return not (sum(self.questions) or sum(self.feedback) or any(map(sum, self.handoffs.values())))


def service_figures(
    questions: Iterable[LoggedQuestion],
    tickets: Iterable[Ticket],
    feedback: Iterable[FeedbackEvent],
    zone: tzinfo,
    last: date,
    days: int,
    channel: str | None = None,
) -> Figures:
    """The figures for ``days`` days ending with ``last`` (in ``zone``), on one channel or all."""
    first = last - timedelta(days=days - 1)
    periods = [first + timedelta(days=i) for i in range(days)]
    index = {d: i for i, d in enumerate(periods)}

    def slot(at: float) -> int | None:
        return index.get(datetime.fromtimestamp(at, zone).date())

    def mine(item_channel: str) -> bool:
        return channel is None or item_channel == channel

    asked, resolved = [0] * days, [0] * days
    escalations, solved, answered = [0] * days, [0] * days, [0] * days
    channels: dict[str, dict[str, int]] = {}

    def count(name: str, key: str) -> None:
        row = channels.setdefault(name, dict.fromkeys(CHANNEL_FIGURES, 0))
        row[key] += 1

    for q in questions:
        i = slot(q.at)
        if i is None or not is_question(q):
            continue
        count(q.channel, "questions")
        if q.outcome in RESOLVED_OUTCOMES:
            count(q.channel, "resolved")
        if mine(q.channel):
            asked[i] += 1
            resolved[i] += q.outcome in RESOLVED_OUTCOMES
    kept = []
    for t in tickets:
        if slot(t.created_at) is not None:
            count(t.channel, "handoffs")
        if t.escalated_at is not None and (i := slot(t.escalated_at)) is not None:
            count(t.channel, "escalations")
            escalations[i] += mine(t.channel)
        if mine(t.channel):
            kept.append(t)
    for f in feedback:
        i = slot(f.at)
        if i is None:
            continue
        count(f.channel, "feedback")
        if f.solved:
            count(f.channel, "solved")
        if mine(f.channel):
            answered[i] += 1
            solved[i] += f.solved
    _, handoffs, _ = handoffs_by_period(kept, zone, first, last)
    return Figures(periods, asked, resolved, handoffs, escalations, solved, answered, dict(sorted(channels.items())))
