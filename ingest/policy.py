"""A policy document → one :class:`kb.model.PolicyChunk` per heading, keeping its heading path."""

from __future__ import annotations

import re

from ingest.faq import ID_PATTERN, split_steps
from ingest.markdown import Document
from ingest.problems import Problem
from kb.model import PolicyChunk
from kb.text import detect_language

_NUMBERED = re.compile(r"^\s*(?:\d+\s*[.、)）]|[①②③④⑤⑥⑦⑧⑨⑩])\s*")


def parse_policy(doc: Document, folder_lang: str | None = None) -> tuple[list[PolicyChunk], list[Problem]]:
    problems: list[Problem] = []
    policy_id = str(doc.meta.get("id") or "")
    if not policy_id:
        raise doc.fail(1, "missing field 'id'")
    if not ID_PATTERN.match(policy_id):
        raise doc.fail(doc.line_of("id"), f"id '{policy_id}' must be lower-case words joined by '-'")
    headings = doc.headings()
    title = str(doc.meta.get("title") or (headings[0].title if headings else "")).strip()
    if not title:
        raise doc.fail(1, "missing field 'title'")
    lang = str(doc.meta.get("lang") or folder_lang or detect_language(title))

    # Split the body at every heading; text before the first heading belongs to the title.
    heading_at = {h.line: h for h in doc.headings()}
    sections: list[tuple[int, str, int, list[str]]] = [(0, title, doc.body_start, [])]
    for offset, line in enumerate(doc.body):
        heading = heading_at.get(doc.body_start + offset)
        if heading:
            sections.append((heading.level, heading.title, heading.line, []))
        else:
            sections[-1][3].append(line)

    chunks: list[PolicyChunk] = []
    path: list[tuple[int, str]] = []
    for level, heading, line, lines in sections:
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, heading))
        text = "\n".join(lines).strip()
        if not text:
            continue
        titles = [title] + [t for lvl, t in path if lvl > 0 and t != title]
        numbered = [row for row in lines if _NUMBERED.match(row)]
        chunks.append(
            PolicyChunk(
                id=f"{policy_id}#{len(chunks) + 1}",
                policy_id=policy_id,
                lang=lang,
                title=title,
                heading_path=titles,
                text=text,
                steps=split_steps(numbered),
                source=doc.path,
                line=line,
            )
        )
    if not chunks:
        problems.append(doc.problem(doc.body_start, "the policy has no text under its headings", "warning"))
    return chunks, problems
