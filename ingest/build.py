"""``kb build``: content → phrases → embeddings (cached) → a new knowledge-base build, swapped in."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ingest.content import Content, load_content
from ingest.phrases import phrases_for
from ingest.problems import Problem
from kb.cache import EmbeddingCache
from kb.config import Config
from kb.embedders import load_embedder, model_id
from kb.model import Phrase, Record
from kb.store import serving_phrases, write_build

Progress = Callable[[str, int, int], None]
"""Called as ``progress(embedder_name, done, total)`` while new texts are embedded."""


class BuildFailed(Exception):
    """Nothing usable to build; the serving knowledge base is left as it was."""


@dataclass
class BuildReport:
    path: Path
    entries: int
    chunks: int
    phrases: int
    embedded: dict[str, int] = field(default_factory=dict)
    """Embedder name → texts it had to embed (the others came from the cache)."""
    problems: list[Problem] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


def build_records(
    config: Config,
    records: list[Record],
    rules: dict,
    content_hashes: dict[str, str] | None = None,
    progress: Progress | None = None,
) -> tuple[Path, list[Phrase], dict[str, int]]:
    """Embed and write a build from records already in hand (the content folder, or an eval set)."""
    known = {p.text: p.tokens for p in serving_phrases(config.index_dir)}
    phrases = [p for record in records for p in phrases_for(record, known)]
    if not phrases:
        raise BuildFailed("nothing to build: no entry could be read")
    texts = [p.text for p in phrases]
    cache = EmbeddingCache(config.cache_file)
    vectors, embedded, described = {}, {}, []
    try:
        for settings in config.embedders:
            name, model = settings.name, model_id(settings)
            report = (lambda done, total, name=name: progress(name, done, total)) if progress else None
            # An embedder embeds the phrases of its languages only; the others get zero rows,
            # which the retriever skips.
            mine = [i for i, p in enumerate(phrases) if p.lang in settings.languages]
            rows, embedded[name] = cache.embed(model, [texts[i] for i in mine], lambda s=settings: load_embedder(s), report)
            matrix = np.zeros((len(phrases), rows.shape[1]), dtype=np.float32)
            matrix[mine] = rows
            vectors[name] = matrix
            described.append(
                {
                    "name": name,
                    "kind": settings.kind,
                    "model": model,
                    "dim": int(matrix.shape[1]),
                    "languages": list(settings.languages),
                }
            )
    finally:
        cache.close()
    manifest = {
        "embedders": described,
        "content_hashes": content_hashes or {},
        "counts": {"records": len(records), "phrases": len(phrases)},
    }
    path = write_build(config.index_dir, records, phrases, vectors, manifest, rules)
    return path, phrases, embedded


def build(config: Config, progress: Progress | None = None, content: Content | None = None) -> BuildReport:
    """Build the knowledge base from ``config.content_dir``. Files with errors are skipped and
    reported; when nothing at all can be read, :class:`BuildFailed` and the old build stays."""
    started = time.perf_counter()
    content = content or load_content(config.content_dir)
    if not content.records:
        details = "; ".join(str(p) for p in content.errors[:3])
        raise BuildFailed(f"nothing to build: no entry could be read{': ' + details if details else ''}")
    hashes = {path: hashlib.sha256(text.encode()).hexdigest() for path, text in content.files.items()}
    rules = {"money": content.money_rules, "handoff": content.handoff_rules}
    path, phrases, embedded = build_records(config, content.records, rules, hashes, progress)
    return BuildReport(
        path=path,
        entries=len({r.id for r in content.faq}),
        chunks=len(content.policies),
        phrases=len(phrases),
        embedded=embedded,
        problems=content.problems,
        skipped=content.skipped,
        seconds=time.perf_counter() - started,
    )
