"""Haystack components of the retrieval pipeline. Each does one thing; :mod:`retriever.pipeline`
wires them together.

    QueryNormalizer ─┬─ DenseRetrievers ───┬─ ScoreFusion ── AnswerRouter
                     │  (per embedder, at  │
                     │  once: embed, then  │
                     │  FaissRetriever)    │
                     └─ KeywordRetriever ──┘
"""

import dataclasses
import heapq
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

import faiss
import numpy as np
from haystack import component
from haystack.core.component.types import Variadic

from kb.config import ConfidenceConfig, ThresholdConfig
from kb.cores import usable_cores
from kb.embedders import Embedder
from kb.model import FaqEntry, Phrase, Record
from kb.store import flat_rows
from kb.text import detect_language, keyword_tokens, normalize
from retriever.confidence import confidence
from retriever.keyword import KeywordIndex
from retriever.money import MoneyGate
from retriever.routing import route
from retriever.whitening import Whitening


@dataclass(frozen=True)
class EntryHits:
    """One retriever's scores, grouped by entry. Read-only once made."""

    source: str
    weight: float
    scores: dict[str, float]
    """Entry id → score of its best phrase (plus a share of its second best)."""
    best_phrase: dict[str, int]
    """Entry id → position of its best-scoring phrase."""
    floor: float
    """A score at or below that of any entry left out of ``scores``."""
    covers: frozenset[str] | None = None
    """The entries this retriever can score (they have phrases in its languages); None: all."""
    similarities: dict[str, float] | None = None
    """Entry id → the same score from the raw (not whitened) vectors, for the confidence; None:
    the scores are raw already."""
    similarity_floor: float = 0.0

    def __deepcopy__(self, memo: dict) -> "EntryHits":
        # The pipeline deep-copies what passes between components; hits are never changed
        # after they are made, so a copy would only cost time on every question.
        return self

    def raw(self) -> "EntryHits":
        """These hits with the raw similarities as their scores."""
        if self.similarities is None:
            return self
        return dataclasses.replace(self, scores=self.similarities, floor=self.similarity_floor, similarities=None)


@dataclass
class Candidate:
    entry_id: str
    score: float
    """Fused score on whitened vectors: what ranks the entries."""
    best_phrase: int | None = None
    similarity: float = 0.0
    """Fused score on the raw vectors: how close the question is, for the confidence."""
    agreement: float = 0.0
    """Share of the embedders whose own ranking puts this entry first, for the confidence."""


@component
class QueryNormalizer:
    """Question → matching form (simplified, half-width, lower case, no emoji) and language."""

    def __init__(self, max_chars: int = 500) -> None:
        self.max_chars = max_chars

    @component.output_types(text=str, language=str, truncated=bool)
    def run(self, query: str) -> dict[str, Any]:
        truncated = len(query) > self.max_chars
        return {"text": normalize(query[: self.max_chars]), "language": detect_language(query), "truncated": truncated}


@dataclass(frozen=True)
class DenseBranch:
    """One embedder's part of a question: its model, the languages it serves, its index."""

    load: Callable[[], Embedder]
    """The model, loaded on first use."""
    languages: frozenset[str]
    search: "FaissRetriever"


@component
class DenseRetrievers:
    """For every embedder of the question's language: embed the question and search that
    embedder's index (:class:`FaissRetriever`). All at once.

    The models and FAISS release the GIL while they compute, so on a multi-core machine one
    branch's index is searched while another's model embeds, and a question waits
    for about its slowest embedder rather than for the sum of them. The branches are
    split into one lane per core, slowest first onto the least loaded lane (by each branch's
    measured time), so that no two of them fight for a core. A model is loaded on the first
    question in one of its languages (or by ``warm_up``): a Chinese question never waits for an
    English-only model. One output per embedder: its hits, empty when it does not take part.
    """

    def __init__(self, branches: dict[str, DenseBranch], lanes: int | None = None) -> None:
        self._branches = branches
        self._lanes = lanes or usable_cores()
        self._seconds = dict.fromkeys(branches, 0.0)
        """Each branch's recent time per question (a moving average), to plan the lanes."""
        component.set_output_types(self, **dict.fromkeys(branches, EntryHits))

    def warm_up(self) -> None:
        for branch in self._branches.values():
            branch.load()

    def run(self, text: str, language: str) -> dict[str, Any]:
        outputs = {name: branch.search.run(None)["hits"] for name, branch in self._branches.items()}
        wanted = [name for name, branch in self._branches.items() if text and language in branch.languages]
        lanes = self._plan(wanted)
        pending = [_pool().submit(self._retrieve, lane, text) for lane in lanes[1:]]
        if lanes:
            outputs.update(self._retrieve(lanes[0], text))
        for future in pending:
            outputs.update(future.result())
        return outputs

    def _plan(self, names: list[str]) -> list[list[str]]:
        """Longest first onto the least loaded lane."""
        lanes: list[list[str]] = [[] for _ in range(min(self._lanes, len(names)))]
        loads = [0.0] * len(lanes)
        for name in sorted(names, key=lambda n: -self._seconds[n]):
            lane = loads.index(min(loads))
            lanes[lane].append(name)
            loads[lane] += self._seconds[name]
        return lanes

    def _retrieve(self, names: list[str], text: str) -> dict[str, EntryHits]:
        hits = {}
        for name in names:
            started = time.perf_counter()
            branch = self._branches[name]
            hits[name] = branch.search.run(branch.load().embed([text])[0])["hits"]
            self._seconds[name] = 0.9 * self._seconds[name] + 0.1 * (time.perf_counter() - started)
        return hits


@cache
def _pool() -> ThreadPoolExecutor:
    """Threads for the dense retrieval of the whole process (shared by every pipeline)."""
    return ThreadPoolExecutor(max_workers=8, thread_name_prefix="query-embed")


@component
class FaissRetriever:
    """Nearest phrases in one FAISS index, grouped by entry (best phrase blended with the entry's
    centroid), on vectors whitened within entries (:mod:`retriever.whitening`); each entry also
    gets its raw similarity, for the confidence."""

    def __init__(
        self,
        index: Any,
        phrases: list[Phrase],
        rows: list[int],
        name: str,
        weight: float,
        top_k: int,
        second_best_share: float,
        centroid_share: float,
        whitening_shrink: float = 0.0,
    ) -> None:
        self.phrase_of = rows
        """Row of the index → position of its phrase."""
        self.entry_of = [phrases[i].entry_id for i in rows]
        self.covers = frozenset(self.entry_of)
        self.name = name
        self.weight = weight
        self.top_k = top_k
        self.second_best_share = second_best_share
        self.centroid_share = centroid_share
        raw = index.reconstruct_n(0, index.ntotal) if index.ntotal else np.zeros((0, index.d), np.float32)
        self.entries, self.raw_centroids = _centroids(raw, self.entry_of)
        self.row_of = {e: i for i, e in enumerate(self.entries)}
        self.whitening = Whitening.fit(raw, self.entry_of, whitening_shrink) if whitening_shrink > 0 else None
        if self.whitening is None:
            searched, self.centroids = raw, self.raw_centroids
        else:
            searched, self.lengths = self.whitening.apply(raw)
            _, self.centroids = _centroids(searched, self.entry_of)
        self.index = _scan_index(searched)
        # The exact rows, read in place from the index (it lives as long as this retriever).
        self.vectors = flat_rows(faiss.downcast_index(self.index.refine_index))

    @component.output_types(hits=EntryHits)
    def run(self, embedding: np.ndarray | None = None) -> dict[str, Any]:
        if embedding is None or self.index.ntotal == 0:
            return {"hits": EntryHits(self.name, self.weight, {}, {}, 0.0)}
        raw = np.asarray(embedding, dtype=np.float32)
        query = raw if self.whitening is None else self.whitening.apply(raw[None])[0][0]
        k = min(self.top_k, self.index.ntotal)
        scores, positions = self.index.search(query.reshape(1, -1), k)
        scores, positions = scores[0], positions[0]
        best, second, best_row = self._by_entry(scores, positions)
        grouped, floor = self._blend(query, best, second, float(scores[-1]) if k else 0.0)
        best_phrase = {e: self.phrase_of[row] for e, row in best_row.items()}
        hits = EntryHits(self.name, self.weight, grouped, best_phrase, floor, self.covers)
        if self.whitening is None:
            return {"hits": hits}
        similarities, similarity_floor = self._raw_similarities(raw, best_row, int(positions[k - 1]))
        return {"hits": dataclasses.replace(hits, similarities=similarities, similarity_floor=similarity_floor)}

    def _by_entry(self, scores: np.ndarray, positions: np.ndarray) -> tuple[dict[str, float], dict[str, float], dict[str, int]]:
        """Each entry's best and second-best phrase score among the hits, and its best row."""
        best: dict[str, float] = {}
        second: dict[str, float] = {}
        best_row: dict[str, int] = {}
        for score, row in zip(scores.tolist(), positions.tolist(), strict=True):
            if row < 0:
                continue
            entry = self.entry_of[row]
            if entry not in best:
                best[entry], best_row[entry] = score, row
            elif entry not in second:
                second[entry] = score
        return best, second, best_row

    def _blend(
        self, query: np.ndarray, best: dict[str, float], second: dict[str, float], lowest: float
    ) -> tuple[dict[str, float], float]:
        """Entry scores: the best phrase plus a share of the second best, blended with the entry's
        centroid; and the floor, a score at or below that of any entry not among the hits
        (``lowest`` is the last hit's score)."""
        share, blend = self.second_best_share, self.centroid_share
        grouped = {e: s + share * second.get(e, min(s, lowest)) for e, s in best.items()}
        # Closeness to the entry's centroid (the mean of its phrasings) steadies the best-phrase
        # score: one odd phrasing should not win alone.
        central = self.centroids @ query
        grouped = {e: (1 - blend) * s + blend * float(central[self.row_of[e]]) for e, s in grouped.items()}
        return grouped, (1 - blend) * lowest * (1 + share) + blend * float(central.min())

    def _raw_similarities(self, raw: np.ndarray, best_row: dict[str, int], last: int) -> tuple[dict[str, float], float]:
        """The raw cosine of the phrase the ranking matched, blended with the entry's raw centroid
        as :meth:`_blend` does, for the confidence; and the floor, from the last hit (row ``last``).

        A raw phrase vector is its whitened one, lengthened back and unwhitened:
        x = l·w @ M⁻¹ + mean, so its cosine with ``raw`` is l·(w @ (M⁻¹ @ raw)) + mean @ raw.
        """
        blend = self.centroid_share
        back = self.whitening.inverse @ raw
        offset = float(self.whitening.mean @ raw)
        rows = np.fromiter(best_row.values(), dtype=np.int64, count=len(best_row))
        phrase = self.lengths[rows] * (self.vectors[rows] @ back) + offset
        raw_central = self.raw_centroids @ raw
        similarities = {
            e: (1 - blend) * float(p) + blend * float(raw_central[self.row_of[e]]) for e, p in zip(best_row, phrase, strict=True)
        }
        lowest = float(self.lengths[last] * (self.vectors[last] @ back) + offset) if last >= 0 else 0.0
        return similarities, (1 - blend) * lowest + blend * float(raw_central.min())


def _scan_index(vectors: np.ndarray) -> Any:
    """The index one query is searched in: 8-bit codes scanned for four times the wanted hits,
    which are then scored exactly on the float rows (FAISS's ``IndexRefineFlat``). The hits and
    their scores are those of a flat search (measured: top 200 scores equal to 2e-7 on 150
    questions over 101,218 phrases) in less than half the time: a flat scan of one query
    reads every float and is bound by memory (15 against 6 ms there)."""
    d = vectors.shape[1]
    codes = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit_uniform, faiss.METRIC_INNER_PRODUCT)
    index = faiss.IndexRefineFlat(codes)
    index.k_factor = 4
    if len(vectors):
        index.train(vectors)
        index.add(vectors)
    return index


def _centroids(vectors: np.ndarray, entry_of: list[str]) -> tuple[list[str], np.ndarray]:
    """The unit mean vector of each entry's phrases (rows of ``vectors``)."""
    entries = list(dict.fromkeys(entry_of))
    if not len(vectors) or not entries:
        return entries, np.zeros((0, vectors.shape[1]), dtype=np.float32)
    rows = {e: i for i, e in enumerate(entries)}
    sums = np.zeros((len(entries), vectors.shape[1]), dtype=np.float32)
    np.add.at(sums, [rows[e] for e in entry_of], vectors)
    return entries, sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)


@component
class KeywordRetriever:
    """BM25 over jieba / word tokens: catches exact terms (order numbers, product names, slang)."""

    def __init__(self, index: KeywordIndex, weight: float) -> None:
        self.index = index
        self.weight = weight

    @component.output_types(hits=EntryHits)
    def run(self, text: str) -> dict[str, Any]:
        if self.weight <= 0:
            return {"hits": EntryHits("keyword", 0.0, {}, {}, 0.0)}
        return {"hits": EntryHits("keyword", self.weight, self.index.search(keyword_tokens(text)), {}, 0.0)}


@component
class ScoreFusion:
    """Weighted mean of the dense scores per entry, plus the weighted keyword score.

    Entries that are not valid today (``valid_from`` / ``valid_until``) are left out; policy
    chunks pay a small penalty so that an FAQ entry wins a near tie.
    """

    def __init__(
        self, records: dict[str, list[Record]], policy_penalty: float, today: date | None = None, keep: int = 10
    ) -> None:
        self.records = records
        self.keep = keep
        self.policy_penalty = policy_penalty
        self.policies = frozenset(e for e, versions in records.items() if any(r.kind == "policy" for r in versions))
        """The ids of policy chunks (the others are FAQ entries)."""
        self.today = today

    @staticmethod
    def _score(hits: EntryHits, entry: str, dense: list[EntryHits], offsets: dict[tuple[str, ...], float]) -> float:
        """This retriever's score for ``entry``; for an entry it cannot score (no phrase in its
        languages), the others' mean moved onto its scale, so that entry is neither favoured nor
        buried by a missing score."""
        if hits.covers is None or entry in hits.covers:
            return hits.scores.get(entry, hits.floor)
        others = [h for h in dense if h is not hits and (h.covers is None or entry in h.covers)]
        if not others:
            return hits.floor
        key = (hits.source, *sorted(h.source for h in others))
        if key not in offsets:
            # The median difference of scales over the entries both sides scored well.
            shared = sorted((e for e in hits.scores if all(e in h.scores for h in others)), key=lambda e: -hits.scores[e])[:20]
            gaps = sorted(_mean(others, e) - hits.scores[e] for e in shared)
            offsets[key] = gaps[len(gaps) // 2] if gaps else 0.0
        return _mean(others, entry) - offsets[key]

    def _valid(self, entry_id: str, day: date) -> bool:
        return any(not isinstance(r, FaqEntry) or r.is_valid_on(day) for r in self.records.get(entry_id, ()))

    @component.output_types(candidates=list[Candidate])
    def run(self, hits: Variadic[EntryHits]) -> dict[str, Any]:
        present = [h for h in hits if h.scores]
        if not present:
            return {"candidates": []}
        day = self.today or date.today()
        entries = [e for e in set().union(*(h.scores for h in present)) if self._valid(e, day)]
        fused = self._fuse(present, entries)
        similarity = self._fuse([h.raw() for h in present], entries)
        dense = [h for h in present if h.source != "keyword"]
        first = dense[0] if dense else None
        # Embedders that agree on the top entry are more often right than their fused score alone
        # says. Each one's first among the entries that can be answered today.
        valid = set(entries)
        firsts = [max((e for e in h.scores if e in valid), key=h.scores.__getitem__, default=None) for h in dense]
        ranked = heapq.nlargest(self.keep, fused.items(), key=lambda item: item[1])
        return {
            "candidates": [
                Candidate(e, s, first.best_phrase.get(e) if first else None, similarity[e], firsts.count(e) / (len(firsts) or 1))
                for e, s in ranked
            ]
        }

    def _fuse(self, present: list[EntryHits], entries: list[str]) -> dict[str, float]:
        dense = [h for h in present if h.source != "keyword"]
        keyword = [h for h in present if h.source == "keyword"]
        offsets: dict[tuple[str, ...], float] = {}
        total_weight = sum(h.weight for h in dense) or 1.0
        fused = {}
        for entry in entries:
            score = sum(h.weight * self._score(h, entry, dense, offsets) for h in dense) / total_weight
            score += sum(h.weight * h.scores.get(entry, 0.0) for h in keyword)
            if entry in self.policies:
                score -= self.policy_penalty
            fused[entry] = score
        return fused


def _mean(hits: list[EntryHits], entry: str) -> float:
    return sum(h.weight * h.scores.get(entry, h.floor) for h in hits) / (sum(h.weight for h in hits) or 1.0)


@dataclass
class Decision:
    action: str
    """``answer``, ``menu`` (the customer picks among the first candidates) or ``handoff``."""
    reason: str | None
    """For a handoff: ``money`` or ``low_confidence``."""
    confidence: float
    candidates: list[Candidate]
    similarity: float = 0.0
    """The top entry's raw fused similarity."""
    margin: float = 0.0
    """The top entry's lead over the runner-up, in the ranking's fused scores."""
    agreement: float = 0.0
    """Share of the embedders whose own ranking puts the top entry first."""
    score: float = 0.0
    """The top entry's fused score on the whitened vectors: with ``margin``, what the confidence is
    made of by default."""


@component
class AnswerRouter:
    """Confidence from the top entry's score and its lead over the runner-up, then one of three
    outcomes: answer (sure), menu (the right entry is likely among the first few: let the customer
    pick), handoff (too far from every entry).

    The money gate comes first and does not depend on any threshold (:func:`retriever.routing.route`).
    """

    def __init__(
        self,
        records: dict[str, list[Record]],
        money: MoneyGate,
        calibration: dict[str, ConfidenceConfig],
        thresholds: ThresholdConfig,
    ) -> None:
        self.records = records
        self.money = money
        self.calibration = calibration
        self.thresholds = thresholds

    @component.output_types(decision=Decision)
    def run(self, candidates: list[Candidate], text: str, language: str) -> dict[str, Any]:
        top = candidates[0].similarity if candidates else 0.0
        score = candidates[0].score if candidates else 0.0
        gap = candidates[0].score - (candidates[1].score if len(candidates) > 1 else 0.0) if candidates else 0.0
        agreement = candidates[0].agreement if candidates else 0.0
        calibration = self.calibration.get(language) or ConfidenceConfig()
        sure = confidence(top, gap, agreement, calibration, score) if candidates else 0.0
        limits = self.thresholds
        # A money entry on top hands off, in a menu too; a money entry lower in a menu hands off
        # when it is picked.
        top_is_money = bool(candidates) and any(r.money for r in self.records.get(candidates[0].entry_id, ()))
        action, reason = route(
            sure,
            answer=limits.answer,
            menu=limits.menu,
            has_candidates=bool(candidates),
            money_question=self.money.matches(text),
            money_top=top_is_money,
        )
        return {"decision": Decision(action, reason, sure, candidates, float(top), float(gap), agreement, float(score))}
