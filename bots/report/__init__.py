"""``kb report``: what customers asked, for the editors who keep the knowledge base.

docs/service-rules.md#closing-the-loop: editors should see which questions are asked most, which go
unanswered and which answers fail, and update the knowledge base from that. This package turns
the state store's records into one Markdown file with PNG charts beside it, so that an editor
can look rather than read:

- the most asked questions (an answered one counted by the entry that answered it);
- the questions the bot did not answer (a menu or a person), grouped by meaning;
- the entries customers marked "not solved" most often;
- why customers were handed to a person, per day.

It only reads. Questions arrive masked (the store masks every text on its way in), so the
report holds no personal data either.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bots.report.analysis import (
    NothingToReport,
    QuestionGroup,
    group_similar,
    handoffs_by_period,
    not_solved_ranking,
    top_questions,
)
from bots.report.markdown import Report, write_report

if TYPE_CHECKING:
    from kb.config import Config


def report_from_config(config: Config, since_days: float = 30, out_dir: Path | None = None, now: float | None = None) -> Report:
    """``kb report``: the configured state store, the serving build's entries (when there is
    one) and the first multilingual embedder; the report in ``out_dir``, by default
    ``reports/<today>/``. Raises :class:`NothingToReport` when there is nothing to show."""
    from bots.settings import load_settings
    from bots.store import open_store
    from kb.embedders import load_embedder
    from kb.store import KnowledgeBase, KnowledgeBaseMissing

    settings = load_settings(config).engine
    now = time.time() if now is None else now
    period = f"in the last {since_days:g} days" if since_days > 0 else "so far"
    where = "PostgreSQL ([engine] state_url)" if settings.state_url else settings.state_path
    if not settings.state_url and not settings.state_path.exists():
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
    store = open_store(settings)
    try:
        since = now - since_days * 86400 if since_days > 0 else 0.0
        out = out_dir or Path("reports") / datetime.fromtimestamp(now, settings.zone).strftime("%Y-%m-%d")
        return write_report(store, out, since=since, embedder=embedder, records=records, zone=settings.zone, now=now, note=note)
    except NothingToReport as empty:
        raise NothingToReport(f"{empty} {period} in {where}") from None
    finally:
        store.close()


__all__ = [
    "NothingToReport",
    "QuestionGroup",
    "Report",
    "group_similar",
    "handoffs_by_period",
    "not_solved_ranking",
    "report_from_config",
    "top_questions",
    "write_report",
]
