"""The report as Markdown: the sections, their tables, and the charts beside them."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path

from bots.report.analysis import (
    MAX_EMBEDDED,
    REASONS,
    SIMILARITY,
    TICKET_STATES,
    UNANSWERED_OUTCOMES,
    NothingToReport,
    QuestionGroup,
    entry_languages,
    entry_question,
    group_similar,
    handoffs_by_period,
    is_question,
    kind_of,
    not_solved_ranking,
    outcome_of,
    top_questions,
)
from bots.report.charts import OUTCOME_COLOURS, barh, chart_label, stacked_columns
from bots.store import LoggedQuestion, StateStore, Ticket
from kb.embedders import Embedder
from kb.model import Record
from kb.text import normalize

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")

SHOWN = 15
"""Rows per table; the charts show the first ten."""


@dataclass
class Report:
    """What was written: the Markdown file, the charts beside it, how many questions it covers."""

    markdown: Path
    charts: list[Path] = field(default_factory=list)
    questions: int = 0


def write_report(
    store: StateStore,
    out_dir: Path,
    *,
    since: float = 0.0,
    embedder: Embedder | None = None,
    records: Mapping[str, Sequence[Record]] | None = None,
    zone: tzinfo = UTC,
    threshold: float = SIMILARITY,
    now: float | None = None,
    note: str = "",
) -> Report:
    """Write ``out_dir/report.md`` and its charts from the store's records since ``since``
    (a timestamp; 0 for everything). ``records`` (entry id → versions, from the serving build)
    shows each entry's question beside its id; ``note`` is added under the title.

    Raises :class:`NothingToReport`, writing nothing, when the period holds no question, handoff
    or feedback: an empty report would only look like a broken one."""
    now = time.time() if now is None else now
    logged = store.questions(since)
    tickets = [t for t in store.tickets(TICKET_STATES) if t.created_at >= since]
    feedback = store.feedback_by_entry()
    if not logged and not tickets and not feedback:
        raise NothingToReport("no questions, handoffs or feedback recorded")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    questions = [q for q in logged if is_question(q)]
    first = datetime.fromtimestamp(
        since if since > 0 else min([now, *(q.at for q in logged), *(t.created_at for t in tickets)]), zone
    )
    last = datetime.fromtimestamp(now, zone)
    charts: list[Path] = []
    lines = [
        f"# What customers asked, {first:%Y-%m-%d} – {last:%Y-%m-%d}",
        "",
        "For the editors of the knowledge base: what customers ask most, what the bot could not answer, which "
        "answers did not help, and why customers were handed to a person. Questions are shown as logged, with "
        "personal data masked.",
        "",
        *([note, ""] if note else []),
        *_overview(logged, questions),
        *_top_section(top_questions(questions, records), out_dir, charts),
        *_unanswered_section(questions, embedder, threshold, out_dir, charts),
        *_not_solved_section(not_solved_ranking(feedback), records, entry_languages(logged), out_dir, charts),
        *_handoff_section(tickets, zone, first.date(), last.date(), out_dir, charts),
        f"_Written {last:%Y-%m-%d %H:%M %Z} by `kb report`._",
        "",
    ]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return Report(path, charts, len(questions))


def _overview(logged: list[LoggedQuestion], questions: list[LoggedQuestion]) -> list[str]:
    kinds = Counter(kind_of(outcome_of(q)) for q in questions)
    rows = [[kind, str(n), _share(n, len(questions))] for kind, n in kinds.most_common()]
    channels = ", ".join(f"{c} {n}" for c, n in Counter(q.channel for q in logged).most_common())
    return [
        f"{_count(len(logged), 'message')} logged ({channels or 'none'}), {len(questions)} of them questions.",
        "",
        *([_table(["what the bot did", "questions", "share"], rows), ""] if rows else []),
    ]


def _top_section(groups: list[QuestionGroup], out_dir: Path, charts: list[Path]) -> list[str]:
    lines = ["## Most asked", ""]
    if not groups:
        return [*lines, "No questions in this period.", ""]
    shown = groups[:SHOWN]
    labels = [chart_label(i, g.entry_id, g.label) for i, g in enumerate(shown[:10], 1)]
    series = {kind: [sum(n for o, n in g.outcomes.items() if kind_of(o) == kind) for g in shown[:10]] for kind in OUTCOME_COLOURS}
    chart = barh(out_dir / "top-questions.png", "Most asked questions", "times asked", labels, series, OUTCOME_COLOURS)
    charts.append(chart)
    rows = [
        [
            str(i),
            _md(g.label) + (f" (`{g.entry_id}`)" if g.entry_id else ""),
            str(g.count),
            " / ".join(_md(w, 40) for w in [w for w in g.wordings if w != g.label][:3]),
            _mix(g.outcomes),
        ]
        for i, g in enumerate(shown, 1)
    ]
    return [
        *lines,
        "An answered question counts for the entry that answered it; any other by its text.",
        "",
        f"![Most asked questions]({chart.name})",
        "",
        _table(["#", "question", "asked", "also asked as", "what the bot did"], rows),
        "",
    ]


def _unanswered_section(
    questions: list[LoggedQuestion], embedder: Embedder | None, threshold: float, out_dir: Path, charts: list[Path]
) -> list[str]:
    lines = ["## Not answered directly: a menu or a person, grouped by similarity", ""]
    unanswered = [q for q in questions if q.outcome in UNANSWERED_OUTCOMES]
    if not unanswered:
        return [*lines, "The bot answered every question in this period.", ""]
    groups = group_similar(unanswered, embedder, threshold)
    distinct = len({normalize(q.question) for q in unanswered})
    if embedder is not None and distinct > 1:
        how = f"Similar questions are grouped with the `{embedder.name}` embedder (cosine ≥ {threshold:g})"
        how += f"; only the {MAX_EMBEDDED} most asked texts are compared." if distinct > MAX_EMBEDDED else "."
    else:
        how = "Identical questions are grouped" + ("." if embedder is not None else " (no embedder to compare meanings).")
    shown = groups[:SHOWN]
    labels = [chart_label(i, None, g.label) for i, g in enumerate(shown[:10], 1)]
    chart = barh(
        out_dir / "unanswered.png",
        "Not answered, by group",
        "questions",
        labels,
        {"questions": [g.count for g in shown[:10]]},
        {"questions": "#d62728"},
    )
    charts.append(chart)
    rows = [
        [str(i), str(g.count), " / ".join(_md(w, 50) for w in g.wordings[:3]), _mix(g.outcomes)] for i, g in enumerate(shown, 1)
    ]
    more = len(groups) - len(shown)
    return [
        *lines,
        f"{_count(len(unanswered), 'question')} in {_count(len(groups), 'group')}, biggest first. {how} "
        "A `low_confidence` group is a gap in the knowledge base; a `money` group is handed off by design, but its "
        "answer can still help while the customer waits.",
        "",
        f"![Not answered, by group]({chart.name})",
        "",
        _table(["#", "questions", "examples", "what the bot did"], rows),
        "",
        *([f"{more} smaller groups are not shown.", ""] if more > 0 else []),
    ]


def _not_solved_section(
    ranking: list[tuple[str, int, int]],
    records: Mapping[str, Sequence[Record]] | None,
    languages: Mapping[str, str],
    out_dir: Path,
    charts: list[Path],
) -> list[str]:
    lines = ['## Answers marked "not solved"', ""]
    if not ranking:
        return [*lines, 'No answer has been marked "not solved".', ""]
    shown = ranking[:SHOWN]
    chart = barh(
        out_dir / "not-solved.png",
        'Answers marked "not solved"',
        "feedback",
        [chart_label(i, entry, "") for i, (entry, _, _) in enumerate(shown[:10], 1)],
        {"not solved": [r[2] for r in shown[:10]], "solved": [r[1] for r in shown[:10]]},
        {"not solved": "#d62728", "solved": "#2ca02c"},
    )
    charts.append(chart)

    def question(entry: str) -> str:
        if not records or not records.get(entry):
            return ""
        return _md(entry_question(records[entry], languages.get(entry, "zh")))

    rows = [
        [str(i), f"`{entry}`", question(entry), str(solved), str(failed), _share(failed, solved + failed)]
        for i, (entry, solved, failed) in enumerate(shown, 1)
    ]
    return [
        *lines,
        "Every feedback recorded so far (not only this period), worst first. Rewrite these answers, or split the "
        "entry when customers mean different things by the question.",
        "",
        f"![Answers marked not solved]({chart.name})",
        "",
        _table(["#", "entry", "question", "solved", "not solved", "not-solved rate"], rows),
        "",
    ]


def _handoff_section(
    tickets: list[Ticket], zone: tzinfo, first: date, last: date, out_dir: Path, charts: list[Path]
) -> list[str]:
    lines = ["## Handoffs to a person, by reason", ""]
    if not tickets:
        return [*lines, "No customer was handed to a person in this period.", ""]
    periods, counts, unit = handoffs_by_period(tickets, zone, first, last)
    chart = stacked_columns(out_dir / "handoff-reasons.png", f"Handoffs per {unit}, by reason", periods, counts)
    charts.append(chart)
    totals = {reason: sum(values) for reason, values in counts.items()}
    total = sum(totals.values())
    rows = [[f"`{r}`", REASONS.get(r, ""), str(n), _share(n, total)] for r, n in sorted(totals.items(), key=lambda x: -x[1])]
    return [
        *lines,
        f"{_count(total, 'handoff')} (one ticket each).",
        "",
        f"![Handoffs per {unit}, by reason]({chart.name})",
        "",
        _table(["reason", "meaning", "handoffs", "share"], [*rows, ["**all**", "", f"**{total}**", "100%"]]),
        "",
    ]


def _md(text: str, limit: int = 80) -> str:
    """A customer's text safe in a Markdown table cell: one line, capped, no markup of its own."""
    text = " ".join(text.split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "n/a"


def _mix(outcomes: Counter[str]) -> str:
    return ", ".join(f"{name} ×{n}" for name, n in outcomes.most_common())
