"""A question set in the ``kb eval`` format: ``kb.jsonl`` and ``queries.jsonl``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kb.model import FaqEntry, Steps
from kb.text import detect_language


@dataclass
class Query:
    text: str
    gold_id: str | None
    money: bool | None = None
    """Labelled as a money question (the gate must hand it off); None when not labelled."""


class DatasetError(ValueError):
    """A line of the set cannot be read; the message names the file and line."""


def _lines(path: Path):
    if not path.exists():
        raise DatasetError(f"{path}: missing (a question set has kb.jsonl and queries.jsonl)")
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as error:
                raise DatasetError(f"{path}:{number}: not JSON ({error.msg})") from None


def load_entries(folder: Path) -> list[FaqEntry]:
    """``kb.jsonl`` as FAQ entries; unknown keys are ignored, ``answer`` may be empty."""
    entries = []
    path = Path(folder) / "kb.jsonl"
    for number, row in _lines(path):
        try:
            question = str(row["question"])
            entry_id = str(row["id"])
        except KeyError as error:
            raise DatasetError(f"{path}:{number}: missing key {error}") from None
        answer = str(row.get("answer") or "")
        entries.append(
            FaqEntry(
                id=entry_id,
                lang=detect_language(question),
                question=question,
                alternates=[str(a) for a in row.get("alt_questions") or []],
                steps=Steps(answer or question, "", []),
                source=f"{path}:{number}",
                line=number,
            )
        )
    return entries


def load_queries(folder: Path) -> list[Query]:
    path = Path(folder) / "queries.jsonl"
    queries = []
    for number, row in _lines(path):
        if "query" not in row:
            raise DatasetError(f"{path}:{number}: missing key 'query'")
        gold = row.get("gold_id")
        money = row.get("money")
        queries.append(Query(str(row["query"]), None if gold is None else str(gold), None if money is None else bool(money)))
    return queries
