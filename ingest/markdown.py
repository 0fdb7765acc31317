"""Markdown with YAML front matter, read with line numbers so that every problem names its line."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

from ingest.problems import ContentError, Problem

# libyaml's C parser when PyYAML has it: ten times faster on a large content folder.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


@dataclass
class Heading:
    level: int
    title: str
    line: int


@dataclass
class Document:
    path: str
    meta: dict[str, Any]
    meta_lines: dict[str, int]
    """The line of each top-level front-matter key."""
    body: list[str]
    body_start: int
    """The file line of ``body[0]``."""

    def line_of(self, key: str) -> int:
        return self.meta_lines.get(key, 1)

    def problem(self, line: int, message: str, severity: str = "error") -> Problem:
        return Problem(self.path, line, message, severity)  # type: ignore[arg-type]

    def fail(self, line: int, message: str) -> ContentError:
        return ContentError(self.problem(line, message))

    def headings(self) -> list[Heading]:
        """Headings of the body, outside fenced code blocks."""
        found, fenced = [], False
        for offset, text in enumerate(self.body):
            if _FENCE.match(text):
                fenced = not fenced
            elif not fenced and (match := _HEADING.match(text)):
                found.append(Heading(len(match.group(1)), match.group(2).strip(), self.body_start + offset))
        return found


def read_document(path: str, text: str) -> Document:
    """Split ``text`` into front matter and body; raise :class:`ContentError` naming the line."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        raise ContentError(Problem(path, 1, "the file must start with front matter: a line '---', the fields, a line '---'"))
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise ContentError(Problem(path, 1, "front matter is not closed: add a line '---' after the fields")) from None
    source = "\n".join(lines[1:end])
    try:
        meta = yaml.load(source, Loader=SAFE_LOADER) if source.strip() else {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = 2 + mark.line if mark is not None else 1
        reason = getattr(error, "problem", None) or "not valid YAML"
        raise ContentError(Problem(path, line, f"malformed front matter: {reason}")) from None
    if not isinstance(meta, dict):
        raise ContentError(Problem(path, 2, "malformed front matter: expected 'field: value' lines"))
    meta_lines = {}
    for offset, raw in enumerate(lines[1:end]):
        match = re.match(r"^([A-Za-z_][\w-]*)\s*:", raw)
        if match and match.group(1) not in meta_lines:
            meta_lines[match.group(1)] = offset + 2
    return Document(path, meta, meta_lines, lines[end + 1 :], end + 2)
