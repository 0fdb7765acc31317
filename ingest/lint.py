"""``kb lint``: every problem in the content, as ``path:line: message``.

Errors: a file that cannot be read, a missing section, a duplicate id, one alternate phrasing
used by two entries, a deflecting phrase in an answer. Warnings: near-duplicate questions,
expired entries, unknown fields.
"""

from __future__ import annotations

from datetime import date

import numpy as np

from ingest.content import Content, load_content
from ingest.problems import Problem
from kb.cache import EmbeddingCache
from kb.config import Config
from kb.embedders import load_embedder, model_id
from kb.model import FaqEntry
from kb.text import normalize


def _line_of(content: Content, path: str, needle: str, after: int = 1) -> int:
    """The first line at or after ``after`` in ``path`` that contains ``needle``."""
    lines = content.files.get(path, "").splitlines()
    for number in range(max(after, 1), len(lines) + 1):
        if needle in lines[number - 1]:
            return number
    for number, line in enumerate(lines, 1):
        if needle in normalize(line):
            return number
    return after


def _duplicate_ids(content: Content) -> list[Problem]:
    problems, seen = [], {}
    for record in content.faq:
        key = (record.id, record.lang)
        if key in seen:
            first = seen[key]
            problems.append(
                Problem(record.source, record.line, f"duplicate id '{record.id}': also used by {first.source}:{first.line}")
            )
        else:
            seen[key] = record
    policies: dict[tuple[str, str], str] = {}
    for chunk in content.policies:
        key = (chunk.policy_id, chunk.lang)
        if policies.setdefault(key, chunk.source) != chunk.source:
            problems.append(Problem(chunk.source, 1, f"duplicate policy id '{chunk.policy_id}': also used by {policies[key]}"))
    return problems


def _shared_phrasings(content: Content) -> list[Problem]:
    problems, owner = [], {}
    for record in content.faq:
        for text in [record.question, *record.alternates]:
            key = normalize(text)
            first = owner.setdefault(key, (record.id, record.source))
            if first[0] != record.id:
                line = _line_of(content, record.source, text)
                problems.append(
                    Problem(
                        record.source,
                        line,
                        f"'{text}' is also a phrasing of entry '{first[0]}' ({first[1]}): keep it in one entry",
                    )
                )
    return problems


def _deflections(content: Content) -> list[Problem]:
    problems = []
    for record in content.records:
        if isinstance(record, FaqEntry):
            texts = [record.steps.conclusion, record.steps.reason, *record.steps.instruction]
        else:
            texts = [record.text]
        body = normalize(" ".join(texts))
        for phrase in content.deflection:
            if phrase in body:
                line = _line_of(content, record.source, phrase, record.line)
                problems.append(
                    Problem(record.source, line, f"deflecting phrase '{phrase}': say what you will do instead (\"let me check\")")
                )
    return problems


def _expired(content: Content, today: date) -> list[Problem]:
    problems = []
    for record in content.faq:
        if record.valid_until and record.valid_until < today:
            line = _line_of(content, record.source, "valid_until")
            problems.append(
                Problem(
                    record.source,
                    line,
                    f"expired on {record.valid_until}: the bot no longer answers it; update or delete it",
                    "warning",
                )
            )
    return problems


def _near_duplicates(content: Content, config: Config) -> list[Problem]:
    """Canonical questions of different entries that mean the same thing (embedding similarity)."""
    entries = [r for r in content.faq if isinstance(r, FaqEntry)]
    if len(entries) < 2 or not config.embedders:
        return []
    settings = config.embedders[0]
    cache = EmbeddingCache(config.cache_file)
    try:
        vectors, _ = cache.embed(model_id(settings), [normalize(e.question) for e in entries], lambda: load_embedder(settings))
    finally:
        cache.close()
    similarity = vectors @ vectors.T
    problems = []
    for i, j in zip(*np.where(np.triu(similarity, 1) >= config.near_duplicate_similarity), strict=False):
        a, b = entries[i], entries[j]
        if a.id != b.id:
            problems.append(
                Problem(
                    b.source,
                    _line_of(content, b.source, "question"),
                    f"question is almost the same as entry '{a.id}' ({a.source}, similarity {similarity[i, j]:.2f}): "
                    "merge them or make them distinct",
                    "warning",
                )
            )
    return problems


def lint(config: Config, today: date | None = None, content: Content | None = None) -> list[Problem]:
    """Every problem in the content folder, sorted by file and line."""
    content = content or load_content(config.content_dir)
    problems = list(content.problems)
    problems += _duplicate_ids(content)
    problems += _shared_phrasings(content)
    problems += _deflections(content)
    problems += _expired(content, today or date.today())
    problems += _near_duplicates(content, config)
    return sorted(set(problems), key=lambda p: (p.path, p.line, p.message))
