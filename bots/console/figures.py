"""The service figures editors watch, per day and channel: questions, the share resolved by the
bot, the handoff rate by reason, escalations, the "solved" feedback rate and the first-response
time against the SLA (a ticket's first agent message against its ``due_at``). Pure functions over
the store's records (the question log, tickets, feedback), counted with :mod:`bots.report`'s rules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from statistics import median

from bots.report.analysis import handoffs_by_period, is_question
from bots.store import FeedbackEvent, LoggedQuestion, Ticket
from kb.vocabulary import Outcome

RESOLVED_OUTCOMES = (Outcome.ANSWER, Outcome.ORDER)
"""Answered from the knowledge base (a menu pick is logged as an answer too) or from the order system."""

CHANNEL_FIGURES = ("questions", "resolved", "handoffs", "escalations", "solved", "feedback", "on_time", "responses")


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
    on_time: list[int] = field(default_factory=list)
    """Tickets opened that day whose first agent message came by the SLA's due time."""
    late: list[int] = field(default_factory=list)
    """... whose first agent message came after it."""
    unanswered: list[int] = field(default_factory=list)
    """... past their due time (or closed) with no agent message at all."""
    response_minutes: list[float | None] = field(default_factory=list)
    """The median first-response time of the day's tickets, in minutes."""
    channels: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per channel over the whole period: questions, resolved, handoffs, escalations, solved,
    feedback, and tickets answered on time (``on_time``) of those due or answered (``responses``)."""
    channel_minutes: dict[str, float] = field(default_factory=dict)
    """Per channel: the median first-response time, in minutes."""

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
    responses: Mapping[str, float] | None = None,
    now: float | None = None,
) -> Figures:
    """The figures for ``days`` days ending with ``last`` (in ``zone``), on one channel or all.
    ``responses``: ticket id → its first agent message's time (the store's ``first_responses``);
    a ticket neither answered nor due by ``now`` is not counted yet."""
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
    on_time, late, unanswered = [0] * days, [0] * days, [0] * days
    waited: list[list[float]] = [[] for _ in range(days)]
    channel_waited: dict[str, list[float]] = {}
    responses = responses or {}
    kept = []
    for t in tickets:
        if (i := slot(t.created_at)) is not None:
            count(t.channel, "handoffs")
            replied = responses.get(t.id)
            if replied is not None or not t.is_open or (now is not None and now > t.due_at):
                count(t.channel, "responses")
                if replied is not None and replied <= t.due_at:
                    count(t.channel, "on_time")
                if replied is not None:
                    channel_waited.setdefault(t.channel, []).append((replied - t.created_at) / 60)
                if mine(t.channel):
                    if replied is None:
                        unanswered[i] += 1
                    else:
                        (on_time if replied <= t.due_at else late)[i] += 1
                        waited[i].append((replied - t.created_at) / 60)
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
    return Figures(
        periods, asked, resolved, handoffs, escalations, solved, answered,
        on_time, late, unanswered, [median(w) if w else None for w in waited],
        dict(sorted(channels.items())), {c: median(w) for c, w in sorted(channel_waited.items())},
    )  # fmt: skip
