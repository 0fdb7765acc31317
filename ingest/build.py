"""``kb build``: content → phrases → embeddings (cached) → a new knowledge-base build, swapped in."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from ingest.content import Content, load_content
from ingest.phrases import phrases_for
from ingest.problems import Problem
from ingest.reuse import PreviousBuild, reader
from kb.cache import EmbeddingCache
from kb.config import Config
from kb.embedders import load_embedder, model_id
from kb.model import Phrase, Record
from kb.store import KnowledgeBase, rows_of, without_gc, write_build

Progress = Callable[[str, int, int], None]
"""Called as ``progress(embedder_name, done, total)`` while new texts are embedded."""


class BuildFailed(Exception):
    """Nothing usable to build; the serving knowledge base is left as it was."""


class BuildRefused(BuildFailed):
    """The build would drop a large share of what is serving (a folder moved, a bad merge): it
    is refused unless forced; the serving knowledge base is left as it was."""


DROP_LIMIT = 0.2
"""The share of the serving entries a build may drop without ``force``."""


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
    kept: list[str] = field(default_factory=list)
    """Files with an error that still serve their last good version."""
    seconds: float = 0.0

    @property
    def differs_from_files(self) -> bool:
        """What serves is not what the content files say (some failed to read)."""
        return bool(self.skipped or self.kept)


def build_records(
    config: Config,
    records: list[Record],
    rules: dict,
    content_hashes: dict[str, str] | None = None,
    progress: Progress | None = None,
    previous: PreviousBuild | None = None,
    reused: set[str] | frozenset[str] = frozenset(),
    warnings: list[Problem] | None = None,
    file_stats: dict[str, tuple[int, int]] | None = None,
) -> tuple[Path, list[Phrase], dict[str, int]]:
    """Embed and write a build from records already in hand (the content folder, or an eval set).

    ``previous`` (the serving build) spares work: the phrases of records read from the files in
    ``reused`` (unchanged since), and the vectors of every text it already holds.
    """
    previous = previous or PreviousBuild()
    known = {p.text: p.tokens for phrases in previous.phrases.values() for p in phrases}
    phrases = []
    for record in records:
        kept = previous.phrases_of(record) if record.source in reused else None
        phrases.extend(kept if kept is not None else phrases_for(record, known))
    if not phrases:
        raise BuildFailed("nothing to build: no entry could be read")
    texts = [p.text for p in phrases]
    held = previous.positions_of(texts)
    cache = EmbeddingCache(config.cache_file)
    vectors, embedded, described = {}, {}, []
    try:
        for settings in config.embedders:
            name, model = settings.name, model_id(settings)
            report = (lambda done, total, name=name: progress(name, done, total)) if progress else None
            # An embedder embeds the phrases of its languages only: its index has a row for each.
            mine = rows_of(phrases, settings.languages)
            rows, todo = previous.known_vectors(name, model, held[mine])
            if todo or not rows.shape[1]:
                load = partial(load_embedder, settings)
                new, embedded[name] = cache.embed(model, [texts[mine[i]] for i in todo], load, report)
                rows = rows if rows.shape[1] else np.zeros((len(mine), new.shape[1]), np.float32)
                rows[todo] = new
            else:
                embedded[name] = 0
            vectors[name] = rows
            described.append(
                {
                    "name": name,
                    "kind": settings.kind,
                    "model": model,
                    "dim": int(rows.shape[1]),
                    "languages": list(settings.languages),
                }
            )
    finally:
        cache.close()
    manifest = {
        "embedders": described,
        "content_hashes": content_hashes or {},
        "file_stats": file_stats or {},
        "reader": reader(),
        "warnings": [[w.path, w.line, w.message] for w in warnings or () if w.severity == "warning"],
        "counts": {"records": len(records), "phrases": len(phrases)},
    }
    path = write_build(config.index_dir, records, phrases, vectors, manifest, rules)
    return path, phrases, embedded


def build(config: Config, progress: Progress | None = None, content: Content | None = None, force: bool = False) -> BuildReport:
    """Build the knowledge base from ``config.content_dir``. A file with errors is reported and
    keeps its last good version serving (or is skipped when it never had one); when nothing at
    all can be read, :class:`BuildFailed` and the old build stays. A build that would drop more
    than :data:`DROP_LIMIT` of the serving entries, or every FAQ entry, is refused
    (:class:`BuildRefused`) unless ``force``.

    What did not change since the serving build is taken from it (:mod:`ingest.reuse`)."""
    with without_gc():
        return _build(config, progress, content, force)


def _build(config: Config, progress: Progress | None, content: Content | None, force: bool) -> BuildReport:
    started = time.perf_counter()
    serving = _serving(config)
    previous = PreviousBuild.of(serving)
    content = content or load_content(config.content_dir, previous=previous)
    if not content.records:
        details = "; ".join(str(p) for p in content.errors[:3])
        raise BuildFailed(f"nothing to build: no entry could be read{': ' + details if details else ''}")
    if serving is not None and not force:
        _refuse_large_drops(serving, content)
    rules = {"money": content.money_rules, "handoff": content.handoff_rules}
    path, phrases, embedded = build_records(
        config, content.records, rules, content.hashes, progress, previous, content.reused, content.problems, content.stats
    )
    return BuildReport(
        path=path,
        entries=len({r.id for r in content.faq}),
        chunks=len(content.policies),
        phrases=len(phrases),
        embedded=embedded,
        problems=content.problems,
        skipped=content.skipped,
        kept=content.kept,
        seconds=time.perf_counter() - started,
    )


def _refuse_large_drops(serving: KnowledgeBase, content: Content) -> None:
    """Raise :class:`BuildRefused` when ``content`` would drop a large share of what serves."""
    before = {(r.kind, r.id) for versions in serving.records.values() for r in versions}
    after = {(r.kind, r.id) for r in content.records}
    dropped = before - after
    faq_before = sum(kind == "faq" for kind, _ in before)
    lost_all_faq = faq_before and not any(kind == "faq" for kind, _ in after)
    if lost_all_faq or len(dropped) > DROP_LIMIT * len(before):
        examples = ", ".join(sorted(i for _, i in dropped)[:5])
        raise BuildRefused(
            f"this build would drop {len(dropped)} of the {len(before)} serving entries ({examples}"
            f"{', ...' if len(dropped) > 5 else ''}); if that is intended, run `kb build --force`"
        )


def _serving(config: Config) -> KnowledgeBase | None:
    """The serving build, or None when there is none or it cannot be read (another format, say)."""
    try:
        return KnowledgeBase.load(config.index_dir)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError):
        return None
