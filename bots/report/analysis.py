"""What the report counts: the questions asked most, unanswered questions grouped by meaning,
the entries marked "not solved", handoffs per period. Pure functions over the store's records."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

import numpy as np

from bots.store import LoggedQuestion, Ticket
from kb.embedders import Embedder
from kb.model import FaqEntry, Record
from kb.text import normalize
from kb.vocabulary import HandoffReason, Outcome, ReplyKind, TicketState

QUESTION_OUTCOMES = (Outcome.ANSWER, Outcome.MENU, Outcome.HANDOFF, Outcome.ORDER, ReplyKind.ASK)
"""Outcomes of messages that asked something. Greetings, thanks, feedback, invalid input and
what a customer writes while an agent has them (``silent``) tell an editor nothing."""

UNANSWERED_OUTCOMES = (Outcome.MENU, Outcome.HANDOFF)

TICKET_STATES = tuple(TicketState)

REASONS = {
    HandoffReason.LOW_CONFIDENCE: "nothing in the knowledge base answered it well",
    HandoffReason.MONEY: "money is involved: always a person, by design",
    HandoffReason.UPSET: "the customer was upset, or answers kept failing",
    HandoffReason.REQUESTED: "the customer asked for a person",
    HandoffReason.PRIVACY: "account security or identity",
    HandoffReason.ORDER_UNAVAILABLE: "the order system did not answer",
    HandoffReason.ORDER_LOCKED: "too many guesses of an order's phone digits",
}

OUTCOME_NAMES = {
    Outcome.ANSWER: "answered",
    Outcome.MENU: "menu",
    Outcome.ORDER: "order lookup",
    ReplyKind.ASK: "asked for the order number",
}

SIMILARITY = 0.9
"""Two unanswered questions whose e5 cosine reaches this ask the same thing. Measured on
customer wordings: 怎么开发票 / 能开发票吗 0.97, two phrasings of "cash on delivery" 0.96, while
different topics (an invoice, a refund, a complaint) stay at 0.78–0.88."""

MAX_EMBEDDED = 2000
"""Distinct unanswered texts compared by meaning (the most asked); the rest count as their own
group. Keeps a long period's report within a minute on a CPU."""


class NothingToReport(Exception):
    """The store holds no question, handoff or feedback for the period: no files are written."""


@dataclass
class QuestionGroup:
    """Questions counted together: one entry's answers, one normalised text, or similar texts."""

    label: str
    """The entry's question, or the most frequent wording."""
    count: int
    wordings: list[str]
    """Distinct wordings as logged, most frequent first."""
    outcomes: Counter[str]
    """What the bot did, e.g. ``answered``, ``handed off: money``, with counts."""
    entry_id: str | None = None


def is_question(entry: LoggedQuestion) -> bool:
    """A message that asked the bot something, with words in it (a bare order number or "2" for
    "not solved" says nothing to an editor)."""
    return entry.outcome in QUESTION_OUTCOMES and any(ch.isalpha() for ch in entry.question)


def top_questions(
    questions: Iterable[LoggedQuestion], records: Mapping[str, Sequence[Record]] | None = None
) -> list[QuestionGroup]:
    """Questions counted by what they asked, most asked first: an answered question by the entry
    that answered it (customers word one topic many ways; the editor owns the topic), any other
    by its normalised text (traditional/simplified, full-width and case do not split a count)."""
    grouped: dict[tuple[str, str], list[LoggedQuestion]] = defaultdict(list)
    for q in questions:
        if is_question(q):
            key = ("entry", q.entry_id) if q.outcome == Outcome.ANSWER and q.entry_id else ("text", normalize(q.question))
            grouped[key].append(q)
    groups = [_group(rows, key[1] if key[0] == "entry" else None, records) for key, rows in grouped.items()]
    return sorted(groups, key=lambda g: -g.count)


def group_similar(
    questions: Iterable[LoggedQuestion],
    embedder: Embedder | None,
    threshold: float = SIMILARITY,
    max_embedded: int = MAX_EMBEDDED,
) -> list[QuestionGroup]:
    """Group questions by meaning, biggest group first, so that an editor sees one gap once
    rather than thirty wordings of it.

    Greedy and order-stable: the distinct normalised texts, most asked first, each join the most
    similar group whose first text reaches ``threshold`` (cosine of ``embedder``'s unit vectors)
    or start a new one. Without an embedder, or with fewer than two texts, identical texts
    group together and nothing is embedded. Only the ``max_embedded`` most asked texts are
    compared; the others stay groups of their own.
    """
    by_text: dict[str, list[LoggedQuestion]] = defaultdict(list)
    for q in questions:
        by_text[normalize(q.question)].append(q)
    texts = sorted(by_text, key=lambda t: -len(by_text[t]))
    if embedder is None or len(texts) < 2:
        clusters = [[i] for i in range(len(texts))]
    else:
        compared = texts[:max_embedded]
        clusters = _greedy(embedder.embed(compared), threshold)
        clusters += [[i] for i in range(len(compared), len(texts))]
    groups = [_group([q for i in cluster for q in by_text[texts[i]]]) for cluster in clusters]
    return sorted(groups, key=lambda g: -g.count)


def not_solved_ranking(feedback: Mapping[str, tuple[int, int]]) -> list[tuple[str, int, int]]:
    """(entry id, solved, not solved) for entries with any "not solved", worst first: most
    "not solved", then the higher not-solved rate."""
    rows = [(entry, solved, failed) for entry, (solved, failed) in feedback.items() if failed > 0]
    return sorted(rows, key=lambda r: (-r[2], -r[2] / (r[1] + r[2]), r[0]))


def handoffs_by_period(
    tickets: Iterable[Ticket], zone: tzinfo, first: date, last: date
) -> tuple[list[date], dict[str, list[int]], str]:
    """Tickets per reason per day (per week from Monday when the period is over two months
    long), from ``first`` to ``last`` with empty days kept, so that the time axis is honest.

    A ticket is one handoff: a retried handoff opens none, and handoffs that do not come from a
    question (the "person" button, repeated "not solved") open one too."""
    weekly = (last - first).days > 62
    step = timedelta(days=7 if weekly else 1)

    def bucket(day: date) -> date:
        return day - timedelta(days=day.weekday()) if weekly else day

    periods, day = [], bucket(first)
    while day <= last:
        periods.append(day)
        day += step
    index = {p: i for i, p in enumerate(periods)}
    counts: dict[str, list[int]] = {}
    for ticket in tickets:
        slot = index.get(bucket(datetime.fromtimestamp(ticket.created_at, zone).date()))
        if slot is not None:
            counts.setdefault(ticket.reason, [0] * len(periods))[slot] += 1
    ordered = sorted(counts, key=lambda r: (list(REASONS).index(r) if r in REASONS else len(REASONS), r))
    return periods, {r: counts[r] for r in ordered}, "week" if weekly else "day"


def _group(
    rows: list[LoggedQuestion], entry_id: str | None = None, records: Mapping[str, Sequence[Record]] | None = None
) -> QuestionGroup:
    wordings = [w for w, _ in Counter(" ".join(q.question.split()) for q in rows).most_common()]
    label = wordings[0]
    if entry_id and records and records.get(entry_id):
        language = Counter(q.language for q in rows).most_common(1)[0][0]
        label = entry_question(records[entry_id], language)
    return QuestionGroup(label, len(rows), wordings, Counter(outcome_of(q) for q in rows), entry_id)


def entry_question(versions: Sequence[Record], language: str) -> str:
    """The entry's question in the customers' language where it has that version."""
    record = next((r for r in versions if r.lang == language), versions[0])
    return record.question if isinstance(record, FaqEntry) else record.heading


def outcome_of(q: LoggedQuestion) -> str:
    if q.outcome == Outcome.HANDOFF:
        return f"handed off: {q.reason or 'unknown'}"
    return OUTCOME_NAMES.get(q.outcome, q.outcome)


def kind_of(outcome: str) -> str:
    """An outcome's colour in the charts: every handoff reason is "handed off", asking for the
    order number and looking the order up are both "order lookup"."""
    if outcome.startswith("handed off"):
        return "handed off"
    return outcome if outcome in ("answered", "menu") else "order lookup"


def entry_languages(questions: Iterable[LoggedQuestion]) -> dict[str, str]:
    """Entry id → the language its questions were mostly asked in (to show its question in it)."""
    asked: dict[str, Counter[str]] = defaultdict(Counter)
    for q in questions:
        if q.entry_id:
            asked[q.entry_id][q.language] += 1
    return {entry: languages.most_common(1)[0][0] for entry, languages in asked.items()}


def _greedy(vectors: np.ndarray, threshold: float) -> list[list[int]]:
    """Indices grouped: each row joins the most similar group seed at ``threshold`` or seeds one."""
    seeds: list[int] = []
    clusters: list[list[int]] = []
    for i, vector in enumerate(vectors):
        if seeds:
            similarities = vectors[seeds] @ vector
            best = int(np.argmax(similarities))
            if similarities[best] >= threshold:
                clusters[best].append(i)
                continue
        seeds.append(i)
        clusters.append([i])
    return clusters
