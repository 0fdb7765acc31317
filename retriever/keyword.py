"""BM25 over the phrases' keyword tokens (jieba words for Chinese), scored per entry."""

from __future__ import annotations

import math
from collections import Counter, defaultdict

from kb.model import Phrase

K1 = 1.2
B = 0.75


class KeywordIndex:
    """An inverted index of phrase tokens. Scores are normalised to [0, 1] by the score the
    query would get against itself, so they can be fused with cosine similarities."""

    def __init__(self, phrases: list[Phrase]) -> None:
        self._entry = [p.entry_id for p in phrases]
        self._postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self._length = [len(p.tokens) or 1 for p in phrases]
        for position, phrase in enumerate(phrases):
            for token, count in Counter(phrase.tokens).items():
                self._postings[token].append((position, count))
        n = max(len(phrases), 1)
        self._average = sum(self._length) / n
        self._idf = {t: math.log(1 + (n - len(p) + 0.5) / (len(p) + 0.5)) for t, p in self._postings.items()}

    def _weight(self, count: int, length: float) -> float:
        return count * (K1 + 1) / (count + K1 * (1 - B + B * length / self._average))

    def search(self, tokens: list[str]) -> dict[str, float]:
        """Entry id → best normalised BM25 score of its phrases, for entries sharing a token."""
        counts = Counter(t for t in tokens if t in self._idf)
        if not counts:
            return {}
        best = sum(self._idf[t] * self._weight(c, len(tokens)) for t, c in counts.items())
        best += sum(math.log(1 + len(self._length) + 0.5) * self._weight(1, len(tokens)) for t in tokens if t not in self._idf)
        scores: dict[int, float] = defaultdict(float)
        for token, _query_count in counts.items():
            idf = self._idf[token]
            for position, count in self._postings[token]:
                scores[position] += idf * self._weight(count, self._length[position])
        entries: dict[str, float] = {}
        for position, score in scores.items():
            entry = self._entry[position]
            value = min(score / best, 1.0)
            if value > entries.get(entry, 0.0):
                entries[entry] = value
        return entries
