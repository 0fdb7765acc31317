"""The retrieval pipeline, wired from the components, and :class:`Retriever`, its one entry point."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections import OrderedDict
from datetime import date
from functools import partial
from typing import Protocol

from haystack import Pipeline

from kb.config import Config
from kb.embedders import load_embedder, other_models
from kb.store import KnowledgeBase, current_build
from kb.text import normalize
from retriever.answer import Answer, RunnerUp, display_question, pick_version, steps_for
from retriever.components import (
    AnswerRouter,
    DenseBranch,
    DenseRetrievers,
    FaissRetriever,
    KeywordRetriever,
    QueryNormalizer,
    ScoreFusion,
)
from retriever.keyword import KeywordIndex
from retriever.money import MoneyGate
from retriever.threads import limit_query_threads


class IndexMismatch(RuntimeError):
    """The configured embedders are not the ones the knowledge base was built with."""


class SharedAnswers(Protocol):
    """Answers every worker shares, behind each worker's own: a popular question is answered
    once for all of them, and a worker that starts (or restarts) finds them ready. The state
    store fills this role (:mod:`bots.store`)."""

    def shared_answer(self, key: str) -> str | None:
        """The answer (:meth:`Answer.to_json`) shared under ``key``, if any."""
        ...

    def share_answer(self, key: str, build: str, question: str, answer: str) -> None:
        """Share ``answer`` under ``key``. ``question`` is not kept: it lets the keeper decline
        questions that carry personal data."""
        ...


def build_pipeline(config: Config, kb: KnowledgeBase, today: date | None = None) -> Pipeline:
    mismatch = other_models(kb.manifest, config.embedders)
    if mismatch:
        raise IndexMismatch(f"{mismatch}: run 'kb build'")
    retrieval = config.retrieval
    pipeline = Pipeline()
    pipeline.add_component("normalize", QueryNormalizer(retrieval.max_query_chars))
    pipeline.add_component("keyword", KeywordRetriever(KeywordIndex(kb.phrases), retrieval.keyword_weight))
    pipeline.add_component("fusion", ScoreFusion(kb.records, retrieval.policy_penalty, today))
    pipeline.add_component(
        "router", AnswerRouter(kb.records, MoneyGate.from_rules(kb.rules), config.confidence, config.thresholds)
    )
    branches = {}
    for settings in config.embedders:
        search = FaissRetriever(
            kb.dense[settings.name],
            kb.phrases,
            kb.rows[settings.name],
            settings.name,
            settings.weight,
            retrieval.top_k,
            retrieval.second_best_share,
            retrieval.centroid_share,
            retrieval.whitening,
        )
        branches[settings.name] = DenseBranch(partial(load_embedder, settings), frozenset(settings.languages), search)
    pipeline.add_component("dense", DenseRetrievers(branches))
    pipeline.connect("normalize.text", "dense.text")
    pipeline.connect("normalize.language", "dense.language")
    for name in branches:
        pipeline.connect(f"dense.{name}", "fusion.hits")
    pipeline.connect("normalize.text", "keyword.text")
    pipeline.connect("keyword.hits", "fusion.hits")
    pipeline.connect("fusion.candidates", "router.candidates")
    pipeline.connect("normalize.text", "router.text")
    pipeline.connect("normalize.language", "router.language")
    return pipeline


class Retriever:
    """Answers questions from a built knowledge base.

    >>> retriever = Retriever.from_config(load_config())
    >>> retriever.ask("东西坏了能退吗").action
    'answer'

    Thread-safe. :meth:`reload_if_changed` swaps in a newer build without stopping questions
    that are under way.
    """

    def __init__(self, config: Config, kb: KnowledgeBase, today: date | None = None, shared: SharedAnswers | None = None) -> None:
        limit_query_threads()
        self.config = config
        self.today = today
        self.shared = shared
        self._state = (kb, build_pipeline(config, kb, today))
        self._reload_lock = threading.Lock()
        self._answers: OrderedDict[tuple[str, date, str, bool], Answer] = OrderedDict()
        self._cache_lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Config, today: date | None = None, shared: SharedAnswers | None = None) -> Retriever:
        return cls(config, KnowledgeBase.load(config.index_dir), today, shared)

    @property
    def kb(self) -> KnowledgeBase:
        return self._state[0]

    def reload_if_changed(self) -> bool:
        """Load the serving build if it is not the one in use. True when it swapped."""
        with self._reload_lock:
            if current_build(self.config.index_dir) in (None, self.kb.build_id):
                return False
            kb = KnowledgeBase.load(self.config.index_dir)
            self._state = (kb, build_pipeline(self.config, kb, self.today))
            return True

    def warm_up(self) -> None:
        """Load every model and lazy table now rather than on the first question (for servers)."""
        self._state[1].warm_up()
        for question in ("东西坏了能退吗", "where is my order"):
            self.ask(question)

    def ask(self, question: str) -> Answer:
        """The answer to ``question``. Customers ask the same few questions over and over, so
        answers are kept per build for the most recent distinct (normalised) questions, and
        shared with the other workers when there is a :class:`SharedAnswers`."""
        started = time.perf_counter()
        kb = self.kb
        # The day is part of the key: an entry may expire at midnight (valid_until).
        key = (kb.build_id, date.today(), normalize(question), len(question) > self.config.retrieval.max_query_chars)
        with self._cache_lock:
            cached = self._answers.get(key)
            if cached is not None:
                self._answers.move_to_end(key)
        shared_key = _shared_key(key) if cached is None and self.shared is not None else ""
        if shared_key and self.shared is not None:
            stored = self.shared.shared_answer(shared_key)
            if stored is not None:
                cached = Answer.from_json(stored)
                self._keep(key, cached)
        if cached is not None:
            return dataclasses.replace(cached, question=question, latency_ms=(time.perf_counter() - started) * 1000)
        answer = self._ask(question)
        if shared_key and self.shared is not None:
            self.shared.share_answer(shared_key, kb.build_id, question, answer.to_json())
        self._keep(key, answer)
        return answer

    def _keep(self, key: tuple[str, date, str, bool], answer: Answer) -> None:
        with self._cache_lock:
            self._answers[key] = answer
            while len(self._answers) > self.config.retrieval.answer_cache_size:
                self._answers.popitem(last=False)

    def _ask(self, question: str) -> Answer:
        started = time.perf_counter()
        kb, pipeline = self._state
        result = pipeline.run({"normalize": {"query": question}}, include_outputs_from={"normalize"})
        normalized = result["normalize"]
        decision = result["router"]["decision"]
        language = normalized["language"]
        candidates = decision.candidates
        ranked = [
            RunnerUp(c.entry_id, display_question(kb.records[c.entry_id], language), round(float(c.score), 4)) for c in candidates
        ]

        answer = Answer(
            question=question,
            language=language,
            action=decision.action,
            confidence=decision.confidence,
            similarity=decision.similarity,
            margin=decision.margin,
            agreement=decision.agreement,
            score=decision.score,
            handoff_reason=decision.reason,
            truncated=normalized["truncated"],
            build=kb.build_id,
            candidates=ranked,
        )
        # A money handoff still shows what the knowledge base says, as information, when it is relevant.
        informative = decision.reason == "money" and decision.confidence >= self.config.thresholds.menu
        if candidates and (decision.action != "handoff" or informative):
            top = candidates[0]
            record = pick_version(kb.records[top.entry_id], language)
            phrase = kb.phrases[top.best_phrase].text if top.best_phrase is not None else None
            answer.entry_id, answer.kind = top.entry_id, record.kind
            answer.steps = steps_for(record, phrase)
        if decision.action == "menu":
            answer.options = ranked[: max(self.config.thresholds.menu_size, 1)]
        answer.latency_ms = (time.perf_counter() - started) * 1000
        return answer

    def answer_entry(self, entry_id: str, language: str, question: str = "") -> Answer | None:
        """The answer of one entry, as if it had been found (the customer picked it from a
        menu). None when the entry is not in the serving build any more."""
        kb = self.kb
        versions = kb.records.get(entry_id)
        if not versions:
            return None
        record = pick_version(versions, language)
        return Answer(
            question=question,
            language=language,
            action="answer",
            confidence=1.0,
            entry_id=entry_id,
            kind=record.kind,
            steps=steps_for(record),
            build=kb.build_id,
        )


def _shared_key(key: tuple[str, date, str, bool]) -> str:
    """A digest of a cache key: what is shared does not hold the customer's words."""
    build, day, text, long = key
    return hashlib.sha256(f"{build}\n{day.isoformat()}\n{int(long)}\n{text}".encode()).hexdigest()
