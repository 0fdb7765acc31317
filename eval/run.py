"""``kb eval DIR``: build a temporary index from a question set, ask every question the way
``kb ask`` does, and report recall, MRR, OOS AUROC, coverage, precision, accuracy, latency."""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from eval.dataset import Query, load_entries, load_queries
from eval.metrics import answer_metrics, auroc, mean_reciprocal_rank, percentile, recall_at
from ingest import build_records, load_money_rules
from kb.config import Config, EmbedderConfig
from kb.model import FaqEntry
from retriever import Answer, Retriever


@dataclass
class Outcome:
    query: Query
    answer: Answer

    @property
    def ranking(self) -> list[str]:
        return [c.entry_id for c in self.answer.candidates]


def ask_all(retriever: Retriever, queries: list[Query], progress: Callable[[int, int], None] | None = None) -> list[Outcome]:
    """Every question through ``retriever``, in order; ``progress(done, total)`` every 50."""
    outcomes = []
    for position, query in enumerate(queries):
        outcomes.append(Outcome(query, retriever.ask(query.text)))
        if progress and (position + 1) % 50 == 0:
            progress(position + 1, len(queries))
    return outcomes


@contextmanager
def serving(
    config: Config, folder: Path, also: list[EmbedderConfig] | None = None, entries: list[FaqEntry] | None = None
) -> Iterator[Retriever]:
    """A retriever for the set: over a fresh temporary build of its ``kb.jsonl`` (embeddings from
    the shared cache), or over the configured knowledge base for a set without ``kb.jsonl``.

    One build serves every pipeline that uses a subset of the configured embedders and of
    ``also`` (``kb eval --compare``), so it is made once; ``also`` is left out for a set without
    ``kb.jsonl``. ``entries``: these instead of the set's ``kb.jsonl`` (``kb eval --learn``).
    """
    if not (Path(folder) / "kb.jsonl").exists():
        yield Retriever.from_config(config)
        return
    entries = load_entries(folder) if entries is None else entries
    with tempfile.TemporaryDirectory(prefix="kb-eval-") as scratch:
        settings = copy.deepcopy(config)
        settings.cache_path = config.cache_file  # keep the embedding cache between runs
        settings.index_dir = Path(scratch)
        settings.embedders = [*config.embedders, *copy.deepcopy(also or [])]
        rules = {"money": load_money_rules(config.content_dir, config.content_dir)}
        build_records(settings, entries, rules)
        settings.embedders = copy.deepcopy(config.embedders)
        yield Retriever.from_config(settings)


def run_queries(config: Config, folder: Path, progress: Callable[[int, int], None] | None = None) -> list[Outcome]:
    """Every query of the set through a fresh index built from its ``kb.jsonl``; a set without
    ``kb.jsonl`` is asked of the configured knowledge base (the real content, built)."""
    queries = load_queries(folder)
    with serving(config, Path(folder)) as retriever:
        return ask_all(retriever, queries, progress)


def summarize(outcomes: list[Outcome]) -> dict[str, float | int | None]:
    in_scope = [o for o in outcomes if o.query.gold_id is not None]
    out_scope = [o for o in outcomes if o.query.gold_id is None]
    ranked = [o.ranking for o in in_scope]
    gold = [o.query.gold_id for o in in_scope]
    # Confidence that the top entry is right: in-scope questions against out-of-scope ones.
    area = auroc([o.answer.confidence for o in in_scope], [o.answer.confidence for o in out_scope])
    # Coverage of the answerable (in scope, not about money) for the sets that label money
    # questions; the dev sets keep exactly the keys of the eval contract.
    labelled = any(o.query.money is not None for o in outcomes)
    answered = answer_metrics(
        [o.answer.answered for o in outcomes],
        [o.answer.entry_id for o in outcomes],
        [o.query.gold_id for o in outcomes],
        [o.query.gold_id is not None and not o.query.money for o in outcomes] if labelled else None,
    )
    latencies = [o.answer.latency_ms for o in outcomes]
    outcomes_metrics = three_way([o.answer for o in outcomes], [o.query.gold_id for o in outcomes])
    money = _money_gate([o for o in outcomes if o.query.money is not None])
    return {
        "recall_at_1": recall_at(ranked, gold, 1),
        "recall_at_3": recall_at(ranked, gold, 3),
        "recall_at_5": recall_at(ranked, gold, 5),
        "mrr": mean_reciprocal_rank(ranked, gold),
        "oos_auroc": area,
        **answered,
        **outcomes_metrics,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "n_queries": len(outcomes),
        **money,
    }


def three_way(answers: list[Answer], gold: list[str | None]) -> dict[str, float]:
    """What the three outcomes (answer, menu, handoff) did for the customers.

    - ``menu_rate``: share of all questions answered with a menu;
    - ``answered_in_scope``: share of the in-scope questions answered directly;
    - ``resolved``: share of the in-scope questions answered right, or whose menu holds the right
      entry (one tap away);
    - ``oos_answered``: share of the out-of-scope questions answered directly (always wrong).
    """
    pairs = list(zip(answers, gold, strict=True))
    in_scope = [(a, g) for a, g in pairs if g is not None]
    out_scope = [a for a, g in pairs if g is None]

    def share(hits: int, total: int) -> float:
        return hits / total if total else float("nan")

    return {
        "menu_rate": share(sum(a.action == "menu" for a, _ in pairs), len(pairs)),
        "answered_in_scope": share(sum(a.answered for a, _ in in_scope), len(in_scope)),
        "resolved": share(sum(resolves(a, g) for a, g in in_scope), len(in_scope)),
        "oos_answered": share(sum(a.answered for a in out_scope), len(out_scope)),
    }


def resolves(answer: Answer, gold: str) -> bool:
    """The customer gets the right entry: answered with it, or offered it in a menu."""
    if answer.answered:
        return answer.entry_id == gold
    return answer.action == "menu" and gold in [o.entry_id for o in answer.options]


def _money_gate(labelled: list[Outcome]) -> dict[str, float]:
    """Recall and precision of the money handoff, on questions labelled ``money`` true/false."""
    if not labelled:
        return {}
    flagged = [o.answer.handoff_reason == "money" for o in labelled]
    truth = [bool(o.query.money) for o in labelled]
    caught = sum(f and t for f, t in zip(flagged, truth, strict=True))
    return {
        "money_recall": caught / sum(truth) if any(truth) else float("nan"),
        "money_precision": caught / sum(flagged) if any(flagged) else float("nan"),
    }


def evaluate(config: Config, folder: Path, progress: Callable[[int, int], None] | None = None) -> dict[str, float | int | None]:
    return summarize(run_queries(config, Path(folder), progress))
