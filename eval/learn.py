"""``kb eval DIR --learn``: the learning loop, measured.

1. Ask the first half of the questions, in order. Where the answer is a menu that holds the right
   entry, the gold label stands in for the customer's tap: a pick of (question, entry).
2. Tally the picks (:func:`ingest.suggestions.tally`): phrasings picked at least ``[learning]
   min_picks`` times for one entry, and never for another, become its alternates.
3. Rebuild with them and ask the second half; compare with the second half asked of the build
   without them.

Only sets with a ``kb.jsonl`` (the entries are rebuilt in memory; the set's files are not changed).
Run as ``python -m eval.learn DIR [--min-picks N] [--json]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from eval.dataset import load_entries, load_queries
from eval.run import Outcome, ask_all, serving, summarize
from ingest.suggestions import Conflict, Suggestion, tally
from kb.config import Config, load_config

SHOWN = ("answered_precision", "answered_in_scope", "resolved", "menu_rate", "oos_answered", "recall_at_1", "oos_auroc")


@dataclass
class Learning:
    picks: int
    """Menus of the first half that held the right entry (each one a customer's tap)."""
    accepted: list[Suggestion]
    conflicts: list[Conflict]
    before: dict[str, float | int | None]
    """The second half's figures without the learnt phrasings."""
    after: dict[str, float | int | None]
    """... and with them."""
    first_half: dict[str, float | int | None] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "picks": self.picks,
            "accepted": [dataclasses.asdict(s) for s in self.accepted],
            "conflicts": [dataclasses.asdict(c) for c in self.conflicts],
            "first_half": self.first_half,
            "second_half_before": self.before,
            "second_half_after": self.after,
        }


def picks_of(outcomes: list[Outcome]) -> list[tuple[str, str]]:
    """(question, entry) for each menu that offered the right entry: the customer would tap it."""
    found = []
    for o in outcomes:
        gold = o.query.gold_id
        if o.answer.action == "menu" and gold is not None and gold in [x.entry_id for x in o.answer.options]:
            found.append((o.query.text, gold))
    return found


def learn(config: Config, folder: Path, min_picks: int | None = None) -> Learning:
    folder = Path(folder)
    if not (folder / "kb.jsonl").exists():
        raise ValueError(f"{folder}: --learn needs a set with kb.jsonl (its entries are rebuilt with the learnt phrasings)")
    queries = load_queries(folder)
    first, second = queries[: len(queries) // 2], queries[len(queries) // 2 :]
    entries = load_entries(folder)
    with serving(config, folder, entries=entries) as retriever:
        asked = ask_all(retriever, first)
        before = summarize(ask_all(retriever, second))
    picks = picks_of(asked)
    known = [text for e in entries for text in (e.question, *e.alternates)]
    result = tally(picks, config.learning.min_picks if min_picks is None else min_picks, known)
    learnt = result.by_entry()
    taught = [dataclasses.replace(e, alternates=[*e.alternates, *learnt.get(e.id, [])]) for e in entries]
    with serving(config, folder, entries=taught) as retriever:
        after = summarize(ask_all(retriever, second))
    return Learning(len(picks), result.suggestions, result.conflicts, before, after, summarize(asked))


def learning_text(result: Learning) -> str:
    """The second half's figures, without and with the learnt phrasings, as a small table."""
    from eval.report import LABELS, fmt, table

    lines = [
        f"First half: {result.first_half.get('n_queries')} questions, {result.picks} menu picks of the right entry; "
        f"{len(result.accepted)} phrasings accepted, {len(result.conflicts)} flagged (picked for different entries).",
        "",
    ]
    rows = [[LABELS.get(k, k), fmt(result.before.get(k), k), fmt(result.after.get(k), k)] for k in SHOWN]
    lines.append(table(["second half", "without", "with the learnt phrasings"], rows))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.learn", description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--config")
    parser.add_argument("--min-picks", type=int, help="default: [learning] min_picks")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = learn(load_config(args.config), Path(args.folder), args.min_picks)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=1, default=str))
    else:
        print(learning_text(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
