"""What a build takes from the serving one, so that a rebuild costs what changed, not the whole
content folder:

- the records of every file whose text did not change, with their warnings (no parsing);
- the phrases of those records (no normalising, no tokenising);
- the vectors of every text the serving build holds, for each embedder whose model did not
  change (no embedding-cache look-ups).

The result is the same build as one made from scratch; only the work differs.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ingest.problems import Problem
from kb.model import Phrase, Record
from kb.store import KnowledgeBase, flat_rows


@dataclass
class PreviousBuild:
    hashes: dict[str, str] = field(default_factory=dict)
    """Display path → SHA-256 of the file's text."""
    stats: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Display path → size and modification time (ns) of the file."""
    records: dict[str, list[Record]] = field(default_factory=dict)
    """Display path → the records read from it."""
    warnings: dict[str, list[Problem]] = field(default_factory=dict)
    """Display path → the warnings its file got."""
    phrases: dict[tuple[str, str], list[Phrase]] = field(default_factory=dict)
    """(record id, language) → the record's phrases."""
    positions: dict[str, int] = field(default_factory=dict)
    """Phrase text → its position among the phrases."""
    vectors: dict[str, tuple[str, np.ndarray, np.ndarray, Any]] = field(default_factory=dict)
    """Embedder name → (model id, phrase position → row or -1, the rows, their FAISS index)."""

    @classmethod
    def of(cls, kb: KnowledgeBase | None) -> PreviousBuild:
        """What ``kb`` (the serving build, if any) offers; nothing when there is none. Records and
        phrases only when it was read by the same code (:func:`reader`); vectors always, since
        they belong to a text and a model."""
        if kb is None:
            return cls()
        manifest = kb.manifest
        positions = {p.text: i for i, p in enumerate(kb.phrases)}
        vectors = {}
        for embedder in manifest["embedders"]:
            index = kb.dense[embedder["name"]]
            rows = flat_rows(index)  # a view, not a copy: the index is kept alive beside it
            row_of = np.full(len(kb.phrases) + 1, -1, np.int64)  # the last one: texts it never saw
            row_of[kb.rows[embedder["name"]]] = np.arange(index.ntotal)
            vectors[embedder["name"]] = (embedder["model"], row_of, rows, index)
        if manifest.get("reader") != reader():
            return cls(positions=positions, vectors=vectors)
        records: dict[str, list[Record]] = defaultdict(list)
        for versions in kb.records.values():
            for record in versions:
                records[record.source].append(record)
        warnings: dict[str, list[Problem]] = defaultdict(list)
        for path, line, message in manifest.get("warnings", []):
            warnings[path].append(Problem(path, line, message, "warning"))
        phrases: dict[tuple[str, str], list[Phrase]] = defaultdict(list)
        for phrase in kb.phrases:
            phrases[(phrase.entry_id, phrase.lang)].append(phrase)
        stats = {path: (size, mtime) for path, (size, mtime) in manifest.get("file_stats", {}).items()}
        return cls(manifest.get("content_hashes", {}), stats, dict(records), dict(warnings), dict(phrases), positions, vectors)

    def untouched(self, path: str, stat: tuple[int, int]) -> tuple[list[Record], list[Problem]] | None:
        """The records and warnings of ``path`` when the file has the size and modification time
        it had last time (then its text is taken to be the same, without reading it)."""
        if self.stats.get(path) != stat or path not in self.hashes:
            return None
        return self.unchanged(path, self.hashes[path])

    def unchanged(self, path: str, text_hash: str) -> tuple[list[Record], list[Problem]] | None:
        """The records and warnings of ``path`` when its text is the one built last time."""
        if self.hashes.get(path) != text_hash or path not in self.records:
            return None
        return self.records[path], self.warnings.get(path, [])

    def phrases_of(self, record: Record) -> list[Phrase] | None:
        return self.phrases.get((record.id, record.lang))

    def positions_of(self, texts: list[str]) -> np.ndarray:
        """Each text's position among the serving build's phrases, -1 for a text it does not have."""
        return np.fromiter((self.positions.get(t, -1) for t in texts), dtype=np.int64, count=len(texts))

    def known_vectors(self, name: str, model: str, at: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """The vectors ``name`` already has (made by ``model``) for the texts at positions ``at``
        (:meth:`positions_of`): the rows found (zero where none) and the indexes into ``at`` of
        the texts still to embed."""
        if name not in self.vectors or self.vectors[name][0] != model or not len(at):
            return np.zeros((len(at), 0), np.float32), list(range(len(at)))
        _, row_of, rows, _ = self.vectors[name]
        where = row_of[at]  # position -1 reads the last slot: -1
        found = rows[np.maximum(where, 0)] if len(rows) else np.zeros((len(at), rows.shape[1]), np.float32)
        found[where < 0] = 0.0
        return found, np.flatnonzero(where < 0).tolist()


_READER_MODULES = ("ingest.markdown", "ingest.faq", "ingest.policy", "ingest.phrases", "ingest.content", "kb.text", "kb.model")
"""The code that turns a content file into records and phrases."""
_READER_PACKAGES = ("opencc", "rjieba")
"""... and the libraries it calls whose output a phrase keeps (simplified text, keyword tokens)."""


@cache
def reader() -> str:
    """A fingerprint of the code that reads content (:data:`_READER_MODULES`): a build made by
    other code (an upgrade, say) is read again from the files rather than trusted."""
    digest = hashlib.sha256()
    for name in _READER_MODULES:
        digest.update(Path(importlib.import_module(name).__file__).read_bytes())
    for package in _READER_PACKAGES:
        digest.update(f"{package}=={importlib.metadata.version(package)}".encode())
    return digest.hexdigest()[:16]
