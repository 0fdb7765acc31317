"""The knowledge base on disk: one folder per build, and a ``current`` link swapped atomically.

::

    .kb/
      current -> builds/20261122T110000.123456
      builds/<stamp>/manifest.json    model names and versions, content hashes, build time
      builds/<stamp>/records.json     FAQ entries (every language version) and policy chunks
      builds/<stamp>/phrases.json     the searched texts, each pointing at its entry (by column)
      builds/<stamp>/dense-<name>.faiss  one FAISS inner-product index per embedder, a row for
                                      each phrase in the embedder's languages, in phrase order
      cache.sqlite                    embeddings by text hash, kept across builds

A build is written beside the serving one and swapped in with one ``rename``: a reader sees the
old knowledge base or the new one, never half of each, and a failed build changes nothing.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from kb.model import Phrase, Record, record_from_dict, record_to_dict

FORMAT = 2
KEEP_BUILDS = 3


@contextmanager
def without_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a build is read or made: hundreds of thousands
    of small objects (phrases, their tokens) live until the end, and the collector would walk them
    again and again for nothing (measured: a 10,000-entry rebuild varied from 2.6 to 4.5 s)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class KnowledgeBaseMissing(FileNotFoundError):
    """There is no built knowledge base at the configured place."""


def _current(index_dir: Path) -> Path:
    return Path(index_dir) / "current"


@dataclass
class KnowledgeBase:
    """A loaded build: records, phrases, one dense index per embedder, the rules."""

    path: Path
    manifest: dict[str, Any]
    records: dict[str, list[Record]]
    """Entry id → its language versions (an FAQ entry) or its one chunk (a policy chunk)."""
    phrases: list[Phrase]
    dense: dict[str, faiss.Index]
    """Embedder name → its flat index, mapped from the build's file: read-only."""
    rules: dict[str, Any]
    rows: dict[str, list[int]] = field(default_factory=dict)
    """Embedder name → the phrase (its position in ``phrases``) of each row of its index."""

    @property
    def build_id(self) -> str:
        return self.path.name

    @classmethod
    def load(cls, index_dir: Path | str) -> KnowledgeBase:
        with without_gc():
            return cls._load(index_dir)

    @classmethod
    def _load(cls, index_dir: Path | str) -> KnowledgeBase:
        link = _current(Path(index_dir))
        if not link.exists():
            raise KnowledgeBaseMissing(f"no knowledge base at {index_dir}: run 'kb build' first")
        path = link.resolve()
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT:
            raise KnowledgeBaseMissing(f"the knowledge base at {index_dir} is from another version: run 'kb build'")
        records: dict[str, list[Record]] = defaultdict(list)
        for data in json.loads((path / "records.json").read_text(encoding="utf-8")):
            record = record_from_dict(data)
            records[record.id].append(record)
        columns = json.loads((path / "phrases.json").read_text(encoding="utf-8"))
        phrases = list(map(Phrase, columns["entry_id"], columns["lang"], columns["text"], columns["tokens"]))
        # Mapped, not read: the rows are read-only, loading costs nothing, and a rebuild that
        # takes a few of them does not read the rest.
        dense = {
            e["name"]: faiss.read_index(str(path / f"dense-{e['name']}.faiss"), faiss.IO_FLAG_MMAP_IFC)
            for e in manifest["embedders"]
        }
        rules = json.loads((path / "rules.json").read_text(encoding="utf-8"))
        rows = {e["name"]: rows_of(phrases, e["languages"]) for e in manifest["embedders"]}
        return cls(path, manifest, dict(records), phrases, dense, rules, rows)


def flat_rows(index: faiss.Index) -> np.ndarray:
    """A flat FAISS index's ``(ntotal, d)`` float32 rows, in place (valid while the index lives)."""
    if not index.ntotal:
        return np.zeros((0, index.d), dtype=np.float32)
    return faiss.rev_swig_ptr(index.get_xb(), index.ntotal * index.d).reshape(index.ntotal, index.d)


def rows_of(phrases: list[Phrase], languages: list[str]) -> list[int]:
    """The phrases an embedder of ``languages`` embeds, in order: the rows of its index."""
    return [i for i, p in enumerate(phrases) if p.lang in languages]


def current_build(index_dir: Path | str) -> str | None:
    """The id of the serving build, cheaply: to notice that a new one landed."""
    link = _current(Path(index_dir))
    return os.readlink(link).rsplit("/", 1)[-1] if link.is_symlink() else None


def serving_manifest(index_dir: Path | str) -> dict[str, Any] | None:
    """The serving build's manifest (models, format, content hashes), without loading the build."""
    link = _current(Path(index_dir))
    try:
        return json.loads((link / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_build(
    index_dir: Path | str,
    records: list[Record],
    phrases: list[Phrase],
    vectors: dict[str, np.ndarray],
    manifest: dict[str, Any],
    rules: dict[str, Any],
) -> Path:
    """Write a build beside the serving one, then swap it in atomically. Returns its folder."""
    index_dir = Path(index_dir)
    builds = index_dir / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
    staging = builds / f".{stamp}.partial"
    staging.mkdir()
    try:
        manifest = {**manifest, "format": FORMAT, "built_at": datetime.now(UTC).isoformat(timespec="seconds")}
        languages = {e["name"]: e["languages"] for e in manifest["embedders"]}
        per_language = Counter(p.lang for p in phrases)
        for name, rows in vectors.items():
            if len(rows) != sum(per_language[lang] for lang in languages[name]):
                raise ValueError(f"embedder {name}: {len(rows)} vectors for the phrases of {', '.join(languages[name])}")
        # FAISS writes without the GIL: the indexes go to disk while the JSON is encoded.
        with ThreadPoolExecutor(max(len(vectors), 1)) as pool:
            written = [pool.submit(_write_index, rows, staging / f"dense-{name}.faiss") for name, rows in vectors.items()]
            _write_json(staging / "records.json", [record_to_dict(r) for r in records])
            # By column: a hundred thousand phrases load and save several times faster than as objects.
            columns = {key: [getattr(p, key) for p in phrases] for key in ("entry_id", "lang", "text", "tokens")}
            _write_json(staging / "phrases.json", columns)
            _write_json(staging / "rules.json", rules)
            _write_json(staging / "manifest.json", manifest)
            for future in written:
                future.result()
        final = builds / stamp
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    link = _current(index_dir)
    temporary = index_dir / f".current.{os.getpid()}"
    if temporary.is_symlink():
        temporary.unlink()
    temporary.symlink_to(Path("builds") / stamp)
    os.replace(temporary, link)
    _prune(builds, keep=stamp)
    return final


def _write_index(rows: np.ndarray, path: Path) -> None:
    index = faiss.IndexFlatIP(rows.shape[1])
    index.add(np.ascontiguousarray(rows, dtype=np.float32))
    faiss.write_index(index, str(path))


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")


def _prune(builds: Path, keep: str) -> None:
    """Keep the newest builds (a server may still be reading the previous one)."""
    done = sorted(p for p in builds.iterdir() if not p.name.startswith("."))
    for old in done[:-KEEP_BUILDS]:
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)
