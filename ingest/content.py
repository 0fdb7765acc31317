"""Read the whole content folder: every entry and policy chunk that parses, and every problem."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.faq import parse_faq
from ingest.markdown import read_document
from ingest.policy import parse_policy
from ingest.problems import ContentError, Problem
from ingest.rules import load_deflection_phrases, load_handoff_rules, load_money_rules
from kb.model import FaqEntry, PolicyChunk, Record

if TYPE_CHECKING:
    from ingest.reuse import PreviousBuild

LANGS = ("zh", "en")


@dataclass
class Content:
    records: list[Record] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    money_rules: dict[str, list[str]] = field(default_factory=dict)
    deflection: list[str] = field(default_factory=list)
    handoff_rules: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    """Display path → text of every Markdown file read (for line look-ups; a build does not read
    the files it takes unchanged from the previous build)."""
    hashes: dict[str, str] = field(default_factory=dict)
    """Display path → SHA-256 of the file's text."""
    stats: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Display path → size and modification time (ns) of the file."""
    reused: set[str] = field(default_factory=set)
    """Files whose records were taken from the previous build, unchanged (not parsed again)."""
    skipped: list[str] = field(default_factory=list)
    """Files left out because of an error (no earlier version of theirs was serving)."""
    kept: list[str] = field(default_factory=list)
    """Files with an error whose last good version (from the serving build) was kept instead: a
    broken edit must not silently change live answers."""

    @property
    def faq(self) -> list[FaqEntry]:
        return [r for r in self.records if isinstance(r, FaqEntry)]

    @property
    def policies(self) -> list[PolicyChunk]:
        return [r for r in self.records if isinstance(r, PolicyChunk)]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def _display(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` where it lies under it (as ``Path.relative_to``, on strings:
    at 10,000 files the Path version was a tenth of a rebuild)."""
    text, prefix = str(path), str(root).rstrip(os.sep) + os.sep
    return text[len(prefix) :] if text.startswith(prefix) else text


def _folder_lang(path: Path) -> str | None:
    return path.parent.name if path.parent.name in LANGS else None


def load_content(content_dir: Path, display_root: Path | None = None, previous: PreviousBuild | None = None) -> Content:
    """Parse every file under ``content_dir``. A file with an error is reported, and either keeps
    its last good version from ``previous`` or is skipped.

    With ``previous`` (the serving build), a file whose text did not change is not parsed again:
    its records and warnings are the ones built last time.
    """
    content_dir = Path(content_dir)
    root = display_root or Path.cwd()
    content = Content()
    if not content_dir.is_dir():
        content.problems.append(Problem(str(content_dir), 1, "no such content folder"))
        return content
    loaders = (
        (load_money_rules, "money_rules"),
        (load_handoff_rules, "handoff_rules"),
        (load_deflection_phrases, "deflection"),
    )
    for loader, target in loaders:
        try:
            setattr(content, target, loader(content_dir, root))
        except ContentError as error:
            content.problems.append(error.problem)
    for kind, folder in (("faq", content_dir / "faq"), ("policy", content_dir / "policies")):
        for path in sorted(folder.rglob("*.md"), key=str):
            display = _display(path, root)
            stat = path.stat()
            content.stats[display] = (stat.st_size, stat.st_mtime_ns)
            # A file with the size and modification time it had at the last build is not read
            # again (as git does); any other is read, hashed and compared.
            known = previous.untouched(display, content.stats[display]) if previous else None
            if known is None:
                try:
                    text = path.read_text(encoding="utf-8")
                except UnicodeDecodeError as error:
                    _failed(content, display, Problem(display, 1, f"not UTF-8 text ({error.reason})"), previous)
                    continue
                content.files[display] = text
                content.hashes[display] = hashlib.sha256(text.encode()).hexdigest()
                known = previous.unchanged(display, content.hashes[display]) if previous else None
            else:
                content.hashes[display] = previous.hashes[display]
            if known is not None:
                content.records.extend(known[0])
                content.problems.extend(known[1])
                content.reused.add(display)
                continue
            try:
                doc = read_document(display, text)
                if kind == "faq":
                    entry, warnings = parse_faq(doc, _folder_lang(path))
                    content.records.append(entry)
                else:
                    chunks, warnings = parse_policy(doc, _folder_lang(path))
                    content.records.extend(chunks)
                content.problems.extend(warnings)
            except ContentError as error:
                _failed(content, display, error.problem, previous)
    return content


def _failed(content: Content, display: str, problem: Problem, previous: PreviousBuild | None) -> None:
    """A file that cannot be read keeps serving its last good version when the serving build has
    one; otherwise it is skipped. Either way the error is reported."""
    content.problems.append(problem)
    last_good = previous.records.get(display) if previous else None
    if not last_good:
        content.skipped.append(display)
        content.hashes.pop(display, None)
        return
    content.records.extend(last_good)
    content.problems.extend(previous.warnings.get(display, []))
    content.kept.append(display)
    # The manifest keeps the good version's hash and stat: the next build reads the file again
    # (its text differs) and reports it again, rather than taking the broken text as built.
    if display in previous.hashes:
        content.hashes[display] = previous.hashes[display]
    else:
        content.hashes.pop(display, None)
    if display in previous.stats:
        content.stats[display] = previous.stats[display]
    else:
        content.stats.pop(display, None)
