"""Embeddings cached by model and text hash, so that a rebuild embeds only what changed."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kb.embedders import Embedder

BATCH = 256


def text_key(model_id: str, text: str) -> str:
    return hashlib.sha256(f"{model_id}\0{text}".encode()).hexdigest()


class EmbeddingCache:
    """A SQLite table of (model + text hash → vector)."""

    def __init__(self, path: Path | str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path))
        self._db.execute("PRAGMA journal_mode=WAL")
        # A cache: a crash may lose the last batch, never corrupt the file, and a commit need not
        # wait for the disk (that wait was a tenth of a one-file rebuild).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS embedding (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")

    def close(self) -> None:
        self._db.close()

    def embed(
        self,
        model_id: str,
        texts: list[str],
        load: Callable[[], Embedder],
        progress: Callable[[int, int], None] | None = None,
    ) -> tuple[np.ndarray, int]:
        """Vectors for ``texts`` (in order) and how many had to be computed.

        ``load`` is called only when some text is missing: a rebuild that changed nothing does
        not pay for loading the model.
        """
        keys = [text_key(model_id, t) for t in texts]
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            part = unique[start : start + 500]
            rows = self._db.execute(f"SELECT key, vector FROM embedding WHERE key IN ({','.join('?' * len(part))})", part)
            found.update((key, np.frombuffer(blob, dtype=np.float32)) for key, blob in rows)
        missing = list(dict.fromkeys(t for t, k in zip(texts, keys, strict=False) if k not in found))
        # Batches of texts of about one length: a model that pads a batch to its longest text
        # (MiniLM) would otherwise spend most of its time on the padding of one long passage.
        missing.sort(key=len)
        embedder = load() if missing else None
        for start in range(0, len(missing), BATCH):
            batch = missing[start : start + BATCH]
            vectors = embedder.embed(batch)
            batch_keys = [text_key(model_id, t) for t in batch]
            self._db.executemany(
                "INSERT OR REPLACE INTO embedding VALUES (?, ?)",
                [(k, v.astype(np.float32).tobytes()) for k, v in zip(batch_keys, vectors, strict=False)],
            )
            self._db.commit()
            found.update(zip(batch_keys, vectors, strict=False))
            if progress:
                progress(min(start + BATCH, len(missing)), len(missing))
        if not keys:
            return np.zeros((0, (embedder or load()).dim), np.float32), 0
        matrix = np.stack([found[k] for k in keys])
        return matrix.astype(np.float32), len(missing)
