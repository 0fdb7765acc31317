"""What editors act on: customers' suggested phrasings (accept writes the entry's Markdown, the
next ``kb build`` picks it up), the unanswered and handed-off questions grouped by meaning, and the
entries customers marked "not solved". Thin over :mod:`bots.report` (``kb suggest`` and
``kb report`` count the same way), bounded so that a page stays quick."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bots.report.analysis import (
    UNANSWERED_OUTCOMES,
    QuestionGroup,
    entry_question,
    group_similar,
    is_question,
    not_solved_ranking,
)
from bots.report.suggestions import Pending, SuggestionError, accept, entry_file, pending
from bots.store import FeedbackEvent, Learning, LoggedQuestion
from ingest.suggestions import Conflict
from kb.config import EmbedderConfig
from kb.embedders import Embedder, load_embedder
from kb.model import Record

GROUPED_TEXTS = 300
"""Distinct unanswered texts compared by meaning on a page (the most asked); the rest stand alone.
About a second to embed the first time on a CPU, nothing after (vectors are remembered)."""

SHOWN = 20


@dataclass(frozen=True)
class NotSolved:
    entry_id: str
    question: str
    solved: int
    failed: int


def content_path(records: Sequence[Record], phrasing: str, content_dir: Path) -> Path:
    """The entry file a suggestion would change; only a file inside the configured content folder
    (a build made elsewhere must not send the desk writing outside it)."""
    content = content_dir.resolve()
    path = entry_file(records, phrasing, [content.parent, content]).resolve()
    if not path.is_relative_to(content):
        raise SuggestionError(f"{path} is outside the content folder {content}")
    return path


def accept_suggestion(
    store: Learning, records: Mapping[str, Sequence[Record]], wanted: str, content_dir: Path
) -> tuple[Pending, Path]:
    """Write the suggestion into its entry's Markdown; (the suggestion, the file relative to the
    content folder's parent, as ``kb build`` names it)."""
    content = content_dir.resolve()
    suggestion = next((s for s in pending(store, records, min_picks=1)[0] if s.id == wanted), None)
    if suggestion is None:
        raise SuggestionError(f"no pending suggestion {wanted}: it was decided already")
    content_path(records[suggestion.entry_id], suggestion.phrasing, content_dir)  # refuse before writing anything
    suggestion, path = accept(store, records, wanted, [content.parent, content])
    return suggestion, path.resolve().relative_to(content.parent)


def entry_questions(records: Mapping[str, Sequence[Record]], ids: Iterable[str], language: str) -> dict[str, str]:
    """Entry id → its question in ``language`` where it has that version (the id when it is gone)."""
    return {i: entry_question(records[i], language) if records.get(i) else i for i in ids}


def conflicts_shown(conflicts: list[Conflict]) -> list[Conflict]:
    return sorted(conflicts, key=lambda c: -sum(c.picks.values()))[:SHOWN]


class Remembered:
    """An embedder that remembers the vectors of texts it has embedded (bounded), so that the
    reports page embeds only the questions that are new since it was last opened."""

    def __init__(self, embedder: Embedder, size: int = 5000) -> None:
        self.name, self.model_id, self.dim = embedder.name, embedder.model_id, embedder.dim
        self._embedder, self._size = embedder, size
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        fresh = self._embedder.embed(missing) if missing else np.zeros((0, self.dim), np.float32)
        with self._lock:
            for text, vector in zip(missing, fresh, strict=True):
                self._vectors[text] = vector
            rows = [self._vectors[t] for t in texts]
            while len(self._vectors) > self._size:
                self._vectors.popitem(last=False)
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim)


def grouping_embedder(embedders: Sequence[EmbedderConfig]) -> Remembered | None:
    """The first multilingual embedder the retriever uses (already loaded: one per process), or
    None when there is none (questions then group by identical text)."""
    choices = [e for e in embedders if {"zh", "en"} <= set(e.languages)]
    if not choices:
        return None
    try:
        return Remembered(load_embedder(choices[0]))
    except (ImportError, OSError):
        return None


def unanswered_groups(
    questions: Iterable[LoggedQuestion], embedder: Embedder | None, channel: str | None = None
) -> list[QuestionGroup]:
    """The questions the bot did not answer (a menu or a person), grouped by meaning, biggest first."""
    unanswered = [
        q for q in questions if is_question(q) and q.outcome in UNANSWERED_OUTCOMES and (channel is None or q.channel == channel)
    ]
    return group_similar(unanswered, embedder, max_embedded=GROUPED_TEXTS)[:SHOWN]


def not_solved(
    feedback: Iterable[FeedbackEvent], records: Mapping[str, Sequence[Record]], language: str, channel: str | None = None
) -> list[NotSolved]:
    """The entries marked "not solved" in the period, worst first."""
    counts: dict[str, tuple[int, int]] = {}
    for f in feedback:
        if f.entry_id and (channel is None or f.channel == channel):
            solved, failed = counts.get(f.entry_id, (0, 0))
            counts[f.entry_id] = (solved + f.solved, failed + (not f.solved))
    ranking = not_solved_ranking(counts)[:SHOWN]
    names = entry_questions(records, [r[0] for r in ranking], language)
    return [NotSolved(entry, names[entry], solved, failed) for entry, solved, failed in ranking]
