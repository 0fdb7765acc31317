"""Whitening within entries: what it does to phrasings, and the raw similarity kept beside it."""

from __future__ import annotations

import numpy as np
import pytest

from retriever.whitening import MIN_ENTRIES, Whitening


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def phrasings(rng: np.random.Generator, entries: int = 40, per_entry: int = 3, dim: int = 8) -> tuple[np.ndarray, list[str]]:
    """Entries apart along dimensions 1..7; their phrasings spread along dimension 0 (noise that
    says nothing about the entry, like the product a customer names)."""
    centres = rng.normal(size=(entries, dim))
    centres[:, 0] = 0.0
    rows, owners = [], []
    for e, centre in enumerate(centres):
        for _ in range(per_entry):
            noise = np.zeros(dim)
            noise[0] = rng.normal(scale=3.0)
            rows.append(centre + noise + rng.normal(scale=0.05, size=dim))
            owners.append(f"e{e}")
    return unit(np.array(rows, dtype=np.float32)), owners


def test_phrasings_of_one_entry_move_closer_than_other_entries():
    rng = np.random.default_rng(0)
    rows, owners = phrasings(rng)
    whitening = Whitening.fit(rows, owners, shrink=0.1)
    whitened, _ = whitening.apply(rows)
    same = [(i, j) for i in range(len(rows)) for j in range(i + 1, len(rows)) if owners[i] == owners[j]]
    other = [(i, j) for i in range(0, len(rows), 7) for j in range(1, len(rows), 11) if owners[i] != owners[j]]

    def gap(vectors: np.ndarray) -> float:
        return np.mean([vectors[i] @ vectors[j] for i, j in same]) - np.mean([vectors[i] @ vectors[j] for i, j in other])

    assert gap(whitened) > gap(rows) + 0.3


def test_a_whitened_row_can_be_turned_back_into_the_raw_one():
    rng = np.random.default_rng(1)
    rows, owners = phrasings(rng)
    whitening = Whitening.fit(rows, owners, shrink=3.0)
    whitened, lengths = whitening.apply(rows)
    back = (whitened * lengths[:, None]) @ whitening.inverse + whitening.mean
    assert np.allclose(back, rows, atol=1e-4)


def test_too_few_entries_with_several_phrasings_are_not_whitened():
    rng = np.random.default_rng(2)
    rows, owners = phrasings(rng, entries=MIN_ENTRIES - 1)
    assert Whitening.fit(rows, owners, shrink=3.0) is None
    single, singles = phrasings(rng, entries=60, per_entry=1)
    assert Whitening.fit(single, singles, shrink=3.0) is None


def test_the_confidence_keeps_the_raw_similarity_of_the_matched_phrase(sample):
    """The ranking uses whitened scores; each entry's similarity is the raw cosine of the phrase
    the ranking matched and of the entry's raw centroid, blended as the scores are."""
    dense = sample._state[1].get_component("dense")
    branch = dense._branches["e5"]
    search = branch.search
    assert search.whitening is not None  # the sample content is large enough
    query = branch.load().embed(["东西坏了可以退吗"])[0]
    hits = search.run(query)["hits"]
    raw = sample.kb.dense["e5"].reconstruct_n(0, sample.kb.dense["e5"].ntotal)
    row_of_phrase = {phrase: row for row, phrase in enumerate(search.phrase_of)}
    blend = search.centroid_share
    for entry, phrase in list(hits.best_phrase.items())[:5]:
        centroid = search.raw_centroids[search.row_of[entry]]
        expected = (1 - blend) * float(raw[row_of_phrase[phrase]] @ query) + blend * float(centroid @ query)
        assert hits.similarities[entry] == pytest.approx(expected, abs=1e-4)
    top = max(hits.scores, key=hits.scores.get)
    assert top == "return-quality-problem" and hits.similarities[top] > 0.85
