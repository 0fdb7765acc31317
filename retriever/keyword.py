"""BM25 over the phrases' keyword tokens (jieba words for Chinese), scored per entry."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
from scipy import sparse

from kb.model import Phrase

K1 = 1.2
B = 0.75


class KeywordIndex:
    """BM25 weights as a sparse token × phrase matrix, so a question costs a few row sums.

    Scores are normalised to [0, 1] by the score the question would get against itself, so
    they can be fused with cosine similarities.
    """

    def __init__(self, phrases: list[Phrase]) -> None:
        self._vocabulary: dict[str, int] = {}
        rows, columns, counts = [], [], []
        for position, phrase in enumerate(phrases):
            for token, count in Counter(phrase.tokens).items():
                rows.append(self._vocabulary.setdefault(token, len(self._vocabulary)))
                columns.append(position)
                counts.append(count)
        n = max(len(phrases), 1)
        lengths = np.array([len(p.tokens) or 1 for p in phrases], dtype=np.float32)
        self._average = float(lengths.mean()) if len(phrases) else 1.0
        frequency = np.bincount(np.asarray(rows, dtype=np.int64), minlength=len(self._vocabulary))
        self._idf = np.log(1 + (n - frequency + 0.5) / (frequency + 0.5)).astype(np.float32)
        self._unseen_idf = math.log(1 + (n + 0.5) / 0.5)
        counts_array = np.asarray(counts, dtype=np.float32)
        row_array = np.asarray(rows, dtype=np.int64)
        column_array = np.asarray(columns, dtype=np.int64)
        weights = self._idf[row_array] * self._saturate(counts_array, lengths[column_array]) if counts else counts_array
        self._matrix = sparse.csr_matrix((weights, (row_array, column_array)), shape=(len(self._vocabulary), len(phrases)))
        # Phrases of one entry are contiguous: best phrase per entry by one reduceat.
        entries = [p.entry_id for p in phrases]
        self._starts = np.array([i for i, e in enumerate(entries) if i == 0 or entries[i - 1] != e], dtype=np.int64)
        self._entries = [entries[i] for i in self._starts]

    def _saturate(self, count: np.ndarray | float, length: np.ndarray | float) -> np.ndarray | float:
        return count * (K1 + 1) / (count + K1 * (1 - B + B * length / self._average))

    def search(self, tokens: list[str], limit: int = 200) -> dict[str, float]:
        """Entry id → best normalised BM25 score of its phrases, for the ``limit`` best of the
        entries sharing a token (on a large knowledge base, a common word is shared by thousands)."""
        known = [self._vocabulary[t] for t in tokens if t in self._vocabulary]
        if not known:
            return {}
        counts = Counter(tokens)
        best = sum(
            (self._idf[self._vocabulary[t]] if t in self._vocabulary else self._unseen_idf) * self._saturate(c, len(tokens))
            for t, c in counts.items()
        )
        scores = np.asarray(self._matrix[known].sum(axis=0)).ravel()
        per_entry = np.maximum.reduceat(scores, self._starts)
        hits = np.flatnonzero(per_entry > 0)
        if len(hits) > limit:
            hits = hits[np.argpartition(-per_entry[hits], limit - 1)[:limit]]
        return {self._entries[i]: min(float(per_entry[i]) / float(best), 1.0) for i in hits}
