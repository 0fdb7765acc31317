"""One FAQ entry file → :class:`kb.model.FaqEntry`."""

from __future__ import annotations

import re
from datetime import date

from ingest.markdown import Document, Heading
from ingest.problems import Problem
from kb.model import FaqEntry, Steps
from kb.text import detect_language

ID_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
KNOWN_FIELDS = {"id", "question", "alternates", "category", "tags", "money", "valid_from", "valid_until", "lang"}
SECTIONS = {
    "结论": "conclusion",
    "conclusion": "conclusion",
    "原因": "reason",
    "reason": "reason",
    "操作": "instruction",
    "steps": "instruction",
    "instruction": "instruction",
}
SECTION_TITLES = {"zh": ("结论", "原因", "操作"), "en": ("Conclusion", "Reason", "Steps")}
_STEP = re.compile(r"^\s*(?:\d+\s*[.、)）]|[①②③④⑤⑥⑦⑧⑨⑩]|[-*+]\s)\s*")


def split_steps(lines: list[str]) -> list[str]:
    """Instruction lines without their numbers or bullets; a line that continues a step joins it."""
    steps: list[str] = []
    for raw in lines:
        text = raw.strip()
        if not text:
            continue
        if _STEP.match(text) or not steps:
            steps.append(_STEP.sub("", text, count=1).strip())
        elif raw.startswith((" ", "\t")):
            steps[-1] += " " + text
        else:
            steps.append(text)
    return steps


def _text_list(doc: Document, key: str, problems: list[Problem]) -> list[str]:
    value = doc.meta.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise doc.fail(doc.line_of(key), f"'{key}' must be a list of texts, one per line starting with '- '")
    texts = [str(v).strip() for v in value]
    if any(not t for t in texts):
        problems.append(doc.problem(doc.line_of(key), f"'{key}' has an empty item", "warning"))
    return [t for t in texts if t]


def _date(doc: Document, key: str) -> date | None:
    value = doc.meta.get(key)
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise doc.fail(doc.line_of(key), f"'{key}' must be a date like 2026-12-31, not '{value}'") from None


def _sections(doc: Document) -> dict[str, tuple[Heading, list[str]]]:
    headings = [h for h in doc.headings() if h.level == 2]
    found: dict[str, tuple[Heading, list[str]]] = {}
    for index, heading in enumerate(headings):
        section = SECTIONS.get(heading.title.lower())
        if section is None:
            raise doc.fail(
                heading.line, f"unknown section '## {heading.title}': use 结论 / 原因 / 操作 or Conclusion / Reason / Steps"
            )
        if section in found:
            raise doc.fail(heading.line, f"section '## {heading.title}' appears twice")
        end = headings[index + 1].line if index + 1 < len(headings) else doc.body_start + len(doc.body)
        found[section] = (heading, doc.body[heading.line + 1 - doc.body_start : end - doc.body_start])
    return found


def parse_faq(doc: Document, folder_lang: str | None = None) -> tuple[FaqEntry, list[Problem]]:
    """Read an FAQ entry. Raises :class:`ingest.problems.ContentError` on an error; returns the
    entry with the warnings found on the way."""
    problems: list[Problem] = []
    meta = doc.meta
    for key in meta:
        if key not in KNOWN_FIELDS:
            problems.append(doc.problem(doc.line_of(key), f"unknown field '{key}' is ignored", "warning"))
    entry_id = meta.get("id")
    if not entry_id:
        raise doc.fail(1, "missing field 'id'")
    entry_id = str(entry_id)
    if not ID_PATTERN.match(entry_id):
        raise doc.fail(doc.line_of("id"), f"id '{entry_id}' must be lower-case words joined by '-'")
    question = str(meta.get("question") or "").strip()
    if not question:
        raise doc.fail(doc.line_of("question") if "question" in meta else 1, "missing field 'question'")
    if "alternates" not in meta:
        problems.append(doc.problem(1, "no 'alternates': add the other ways customers ask this", "warning"))
    alternates = _text_list(doc, "alternates", problems)
    tags = _text_list(doc, "tags", problems)
    money = meta.get("money", False)
    if not isinstance(money, bool):
        raise doc.fail(doc.line_of("money"), "'money' must be true or false")
    lang = str(meta.get("lang") or folder_lang or detect_language(question))
    if lang not in SECTION_TITLES:
        raise doc.fail(doc.line_of("lang"), f"lang '{lang}' must be zh or en")
    valid_from, valid_until = _date(doc, "valid_from"), _date(doc, "valid_until")
    if valid_from and valid_until and valid_until < valid_from:
        raise doc.fail(doc.line_of("valid_until"), "'valid_until' is before 'valid_from'")

    sections = _sections(doc)
    end_line = doc.body_start + max(len(doc.body) - 1, 0)
    texts: dict[str, list[str]] = {}
    for section, title in zip(("conclusion", "reason", "instruction"), SECTION_TITLES[lang], strict=False):
        if section not in sections:
            raise doc.fail(end_line, f"missing section '## {title}'")
        heading, lines = sections[section]
        if not any(line.strip() for line in lines):
            raise doc.fail(heading.line, f"section '## {heading.title}' is empty")
        texts[section] = lines
    order = [sections[s][0].line for s in ("conclusion", "reason", "instruction")]
    if order != sorted(order):
        raise doc.fail(order[1], "sections must come in this order: " + " / ".join(SECTION_TITLES[lang]))

    def paragraph(lines: list[str]) -> str:
        return " ".join(line.strip() for line in lines if line.strip())

    steps = Steps(paragraph(texts["conclusion"]), paragraph(texts["reason"]), split_steps(texts["instruction"]))
    entry = FaqEntry(
        id=entry_id,
        lang=lang,
        question=question,
        alternates=alternates,
        steps=steps,
        category=str(meta.get("category") or ""),
        tags=tags,
        money=money,
        valid_from=valid_from,
        valid_until=valid_until,
        source=doc.path,
        line=doc.line_of("id"),
    )
    return entry, problems
