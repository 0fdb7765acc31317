"""``kb report``: what customers asked, for the editors who keep the knowledge base.

domain.md, "Closing the loop": editors should see which questions are asked most, which go
unanswered and which answers fail, and update the knowledge base from that. This module turns
the state store's records into one Markdown file with PNG charts beside it, so that an editor
can look rather than read:

- the most asked questions (an answered one counted by the entry that answered it);
- the questions the bot did not answer (clarified or handed off), grouped by meaning;
- the entries customers marked "not solved" most often;
- why customers were handed to a person, per day.

It only reads. Questions arrive masked (the store masks every text on its way in), so the
report holds no personal data either.
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bots.store import LoggedQuestion, StateStore, Ticket
from kb.embedders import Embedder
from kb.model import FaqEntry, Record
from kb.text import normalize

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from kb.config import Config

QUESTION_OUTCOMES = ("answer", "clarify", "handoff", "order", "ask")
"""Outcomes of messages that asked something. Greetings, thanks, feedback, invalid input and
what a customer writes while an agent has them (``silent``) tell an editor nothing."""
UNANSWERED_OUTCOMES = ("clarify", "handoff")
TICKET_STATES = ("waiting", "human", "closed")
REASONS = {
    "low_confidence": "nothing in the knowledge base answered it well",
    "money": "money is involved: always a person, by design",
    "upset": "the customer was upset, or answers kept failing",
    "requested": "the customer asked for a person",
    "privacy": "account security or identity",
    "order_unavailable": "the order system did not answer",
}
_REASON_COLOURS = {
    "low_confidence": "#d62728",
    "money": "#1f77b4",
    "upset": "#ff7f0e",
    "requested": "#9467bd",
    "privacy": "#8c564b",
    "order_unavailable": "#7f7f7f",
}
_OUTCOME_NAMES = {"answer": "answered", "clarify": "clarified", "order": "order lookup", "ask": "asked for the order number"}
_OUTCOME_COLOURS = {"answered": "#2ca02c", "clarified": "#e6a100", "handed off": "#d62728", "order lookup": "#1f77b4"}
_CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Microsoft YaHei",
    "PingFang SC",
    "SimHei",
    "Arial Unicode MS",
)
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")

SIMILARITY = 0.9
"""Two unanswered questions whose e5 cosine reaches this ask the same thing. Measured on
customer wordings: 怎么开发票 / 能开发票吗 0.97, two phrasings of "cash on delivery" 0.96, while
different topics (an invoice, a refund, a complaint) stay at 0.78–0.88."""
MAX_EMBEDDED = 2000
"""Distinct unanswered texts compared by meaning (the most asked); the rest count as their own
group. Keeps a long period's report within a minute on a CPU."""
SHOWN = 15
"""Rows per table; the charts show the first ten."""


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


@dataclass
class Report:
    """What was written: the Markdown file, the charts beside it, how many questions it covers."""

    markdown: Path
    charts: list[Path] = field(default_factory=list)
    questions: int = 0


# turning records into figures


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
            key = ("entry", q.entry_id) if q.outcome == "answer" and q.entry_id else ("text", normalize(q.question))
            grouped[key].append(q)
    groups = [_group(rows, key[1] if key[0] == "entry" else None, records) for key, rows in grouped.items()]
    return sorted(groups, key=lambda g: -g.count)


def group_similar(
    questions: Iterable[LoggedQuestion], embedder: Embedder | None, threshold: float = SIMILARITY
) -> list[QuestionGroup]:
    """Group questions by meaning, biggest group first, so that an editor sees one gap once
    rather than thirty wordings of it.

    Greedy and order-stable: the distinct normalised texts, most asked first, each join the most
    similar group whose first text reaches ``threshold`` (cosine of ``embedder``'s unit vectors)
    or start a new one. Without an embedder, or with fewer than two texts, identical texts
    group together and nothing is embedded.
    """
    by_text: dict[str, list[LoggedQuestion]] = defaultdict(list)
    for q in questions:
        by_text[normalize(q.question)].append(q)
    texts = sorted(by_text, key=lambda t: -len(by_text[t]))
    if embedder is None or len(texts) < 2:
        clusters = [[i] for i in range(len(texts))]
    else:
        compared = texts[:MAX_EMBEDDED]
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
        label = _entry_question(records[entry_id], language)
    return QuestionGroup(label, len(rows), wordings, Counter(_outcome(q) for q in rows), entry_id)


def _entry_question(versions: Sequence[Record], language: str) -> str:
    """The entry's question in the customers' language where it has that version."""
    record = next((r for r in versions if r.lang == language), versions[0])
    return record.question if isinstance(record, FaqEntry) else record.heading


def _outcome(q: LoggedQuestion) -> str:
    if q.outcome == "handoff":
        return f"handed off: {q.reason or 'unknown'}"
    return _OUTCOME_NAMES.get(q.outcome, q.outcome)


def _kind(outcome: str) -> str:
    """An outcome's colour in the charts: every handoff reason is "handed off", asking for the
    order number and looking the order up are both "order lookup"."""
    if outcome.startswith("handed off"):
        return "handed off"
    return outcome if outcome in ("answered", "clarified") else "order lookup"


def _entry_languages(questions: Iterable[LoggedQuestion]) -> dict[str, str]:
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


# writing the report


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
        *_not_solved_section(not_solved_ranking(feedback), records, _entry_languages(logged), out_dir, charts),
        *_handoff_section(tickets, zone, first.date(), last.date(), out_dir, charts),
        f"_Written {last:%Y-%m-%d %H:%M %Z} by `kb report`._",
        "",
    ]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return Report(path, charts, len(questions))


def report_from_config(config: Config, since_days: float = 30, out_dir: Path | None = None, now: float | None = None) -> Report:
    """``kb report``: the configured state store, the serving build's entries (when there is
    one) and the first multilingual embedder; the report in ``out_dir``, by default
    ``reports/<today>/``. Raises :class:`NothingToReport` when there is nothing to show."""
    from bots.settings import load_settings
    from bots.store import SqliteStateStore
    from kb.embedders import load_embedder
    from kb.store import KnowledgeBase, KnowledgeBaseMissing

    settings = load_settings(config).engine
    now = time.time() if now is None else now
    period = f"in the last {since_days:g} days" if since_days > 0 else "so far"
    if not settings.state_path.exists():
        raise NothingToReport(f"no state store at {settings.state_path} yet")
    try:
        records = KnowledgeBase.load(config.index_dir).records
        note = ""
    except KnowledgeBaseMissing:
        records, note = None, "No knowledge base is built: entries are shown by their id."
    choices = [e for e in config.embedders if {"zh", "en"} <= set(e.languages)] or config.embedders
    try:
        embedder = load_embedder(choices[0]) if choices else None
    except (ImportError, OSError) as error:
        embedder, note = None, f"{note} Unanswered questions are grouped by identical text: no embedder ({error}).".strip()
    store = SqliteStateStore(settings.state_path)
    try:
        since = now - since_days * 86400 if since_days > 0 else 0.0
        out = out_dir or Path("reports") / datetime.fromtimestamp(now, settings.zone).strftime("%Y-%m-%d")
        return write_report(store, out, since=since, embedder=embedder, records=records, zone=settings.zone, now=now, note=note)
    except NothingToReport as empty:
        raise NothingToReport(f"{empty} {period} in {settings.state_path}") from None
    finally:
        store.close()


def _overview(logged: list[LoggedQuestion], questions: list[LoggedQuestion]) -> list[str]:
    kinds = Counter(_kind(_outcome(q)) for q in questions)
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
    labels = [_chart_label(i, g.entry_id, g.label) for i, g in enumerate(shown[:10], 1)]
    series = {kind: [sum(n for o, n in g.outcomes.items() if _kind(o) == kind) for g in shown[:10]] for kind in _OUTCOME_COLOURS}
    chart = _barh(out_dir / "top-questions.png", "Most asked questions", "times asked", labels, series, _OUTCOME_COLOURS)
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
    lines = ["## Not answered: clarified or handed off, grouped by similarity", ""]
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
    labels = [_chart_label(i, None, g.label) for i, g in enumerate(shown[:10], 1)]
    chart = _barh(
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
    chart = _barh(
        out_dir / "not-solved.png",
        'Answers marked "not solved"',
        "feedback",
        [_chart_label(i, entry, "") for i, (entry, _, _) in enumerate(shown[:10], 1)],
        {"not solved": [r[2] for r in shown[:10]], "solved": [r[1] for r in shown[:10]]},
        {"not solved": "#d62728", "solved": "#2ca02c"},
    )
    charts.append(chart)

    def question(entry: str) -> str:
        if not records or not records.get(entry):
            return ""
        return _md(_entry_question(records[entry], languages.get(entry, "zh")))

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
    chart = _stacked_columns(out_dir / "handoff-reasons.png", f"Handoffs per {unit}, by reason", periods, counts)
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


# Markdown and charts


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


@lru_cache(maxsize=1)
def _fonts() -> tuple[tuple[str, ...], frozenset[int]]:
    """The chart font families (DejaVu Sans, then a CJK font where one is installed) and every
    character they can draw: a label they cannot draw is shown by its number instead of boxes."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    installed = {f.name: f.fname for f in font_manager.fontManager.ttflist}
    families = ("DejaVu Sans", *[name for name in _CJK_FONTS if name in installed][:1])
    drawable: set[int] = set()
    for name in families:
        if name in installed:
            drawable |= set(FT2Font(installed[name]).get_charmap())
    return families, frozenset(drawable)


def _chart_label(rank: int, entry_id: str | None, text: str, limit: int = 36) -> str:
    """``#rank`` and the entry id or the text, where the chart's fonts can draw it; the number
    always matches the table's row."""
    shown = entry_id or " ".join(text.split())
    shown = shown if len(shown) <= limit else shown[: limit - 1] + "…"
    _, drawable = _fonts()
    if shown and all(ord(ch) in drawable for ch in shown):
        return f"#{rank} {shown}"
    return f"#{rank} (see the table)"


@contextmanager
def _axes(path: Path, width: float, height: float) -> Iterator[Axes]:
    """A figure on matplotlib's Agg canvas (no display, no global pyplot state), saved on exit."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"font.family": list(_fonts()[0])}):
        figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
        FigureCanvasAgg(figure)
        yield figure.subplots()
        figure.savefig(path)


def _barh(path: Path, title: str, xlabel: str, labels: list[str], series: dict[str, list[int]], colours: dict[str, str]) -> Path:
    """Horizontal bars, first row on top, the series stacked; empty series are left out."""
    with _axes(path, 7.5, 1.0 + 0.42 * len(labels)) as axes:
        left = np.zeros(len(labels))
        for name, values in series.items():
            if any(values):
                axes.barh(range(len(labels)), values, left=left, color=colours[name], label=name)
                left += values
        axes.set_yticks(range(len(labels)), labels, fontsize=8)
        axes.invert_yaxis()
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.set_xlabel(xlabel)
        axes.set_title(title)
        if sum(1 for values in series.values() if any(values)) > 1:
            axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # beside the bars, never on them
    return path


def _stacked_columns(path: Path, title: str, periods: list[date], counts: dict[str, list[int]]) -> Path:
    """One column per period, stacked by reason, in the same colour for a reason in every report."""
    with _axes(path, min(16.0, max(6.0, 0.22 * len(periods) + 2.5)), 4.0) as axes:
        bottom = np.zeros(len(periods))
        spare = iter(["#17becf", "#bcbd22", "#e377c2"] * 5)
        for reason, values in counts.items():
            axes.bar(range(len(periods)), values, bottom=bottom, color=_REASON_COLOURS.get(reason) or next(spare), label=reason)
            bottom += values
        every = max(1, len(periods) // 15)
        axes.set_xticks(range(0, len(periods), every), [f"{p:%m-%d}" for p in periods[::every]], rotation=45, fontsize=8)
        axes.yaxis.get_major_locator().set_params(integer=True)
        axes.set_ylabel("handoffs")
        axes.set_title(title)
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return path
