"""Alternate phrasings learnt from customers: which to suggest, and writing one into an entry.

A customer who picks an entry from a menu (or says "solved" after an unsure answer) has labelled
their own words with that entry: a real phrasing with a known answer. :func:`tally` counts those
picks per (normalised phrasing, entry) and proposes the phrasings picked often enough; a phrasing
picked for different entries is flagged instead (customers disagree: an editor should look).
:func:`add_alternate` writes an accepted phrasing into the entry's Markdown front matter, changing
only the lines it must, so that the file stays as its editor wrote it.

Pure: no store, no retriever. ``kb eval --learn`` and ``kb suggest`` both use it.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ingest.markdown import SAFE_LOADER
from kb.text import normalize


@dataclass(frozen=True)
class Suggestion:
    phrasing: str
    """As a customer first wrote it (the first seen of its normalised form)."""
    entry_id: str
    picks: int


@dataclass
class Conflict:
    phrasing: str
    picks: dict[str, int]
    """Entry id → how often this phrasing was picked for it."""


@dataclass
class Tally:
    suggestions: list[Suggestion] = field(default_factory=list)
    """Phrasings picked at least ``min_picks`` times for one entry and never for another; most
    picked first."""
    conflicts: list[Conflict] = field(default_factory=list)
    """Phrasings picked for more than one entry: flagged, not suggested."""

    def by_entry(self) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = defaultdict(list)
        for s in self.suggestions:
            grouped[s.entry_id].append(s.phrasing)
        return dict(grouped)


def tally(picks: Iterable[tuple[str, str]], min_picks: int = 1, known: Iterable[str] = ()) -> Tally:
    """``picks``: (the customer's words, the entry they picked), in the order they happened.
    ``known``: phrasings the knowledge base has already (questions, alternates): never suggested."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    first_seen: dict[str, str] = {}
    for text, entry_id in picks:
        key = normalize(text)
        if not key:
            continue
        first_seen.setdefault(key, text.strip())
        counts[key][entry_id] += 1
    have = {normalize(k) for k in known}
    result = Tally()
    for key, per_entry in counts.items():
        if key in have:
            continue
        if len(per_entry) > 1:
            result.conflicts.append(Conflict(first_seen[key], dict(per_entry)))
            continue
        ((entry_id, n),) = per_entry.items()
        if n >= max(min_picks, 1):
            result.suggestions.append(Suggestion(first_seen[key], entry_id, n))
    result.suggestions.sort(key=lambda s: (-s.picks, s.entry_id, s.phrasing))
    return result


class FrontMatterError(ValueError):
    """The file's front matter cannot be edited safely; the message says why."""


_KEY = re.compile(r"^([A-Za-z_][\w-]*)\s*:(.*)$")
_ITEM = re.compile(r"^(\s+)-\s")


def add_alternate(path: Path, phrasing: str) -> bool:
    """Add ``phrasing`` to the ``alternates`` of the Markdown entry at ``path``. False when it is
    there already (as the question or an alternate, after normalisation); the file is untouched then.

    Only lines of the front matter change: a block list gets one more ``- item`` line (indented
    like the others), a flow list (``[a, b]``) one more item, and a file without ``alternates``
    gets the key after ``question``.
    """
    path = Path(path)
    with path.open(encoding="utf-8", newline="") as file:  # keep \r\n where the editor used it
        lines = file.read().splitlines(keepends=True)
    end, meta = _front_matter(lines, path)
    if not isinstance(meta.get("alternates") or [], list):
        raise FrontMatterError(f"{path}: 'alternates' is not a list")
    present = [str(meta.get("question") or ""), *(str(a) for a in meta.get("alternates") or [])]
    if normalize(phrasing) in {normalize(p) for p in present}:
        return False
    item = _yaml_scalar(phrasing.strip())
    newline = "\r\n" if lines[0].endswith("\r\n") else "\n"
    keys = {m.group(1): i for i in range(1, end) if (m := _KEY.match(lines[i]))}
    if "alternates" in keys:
        row = keys["alternates"]
        value = _KEY.match(lines[row]).group(2).strip()
        if value.startswith("["):
            lines[row] = _add_to_flow(lines[row], item, path)
        elif value and not value.startswith("#"):
            raise FrontMatterError(f"{path}: 'alternates' is not a list")
        else:
            items = [i for i in range(row + 1, end) if _ITEM.match(lines[i])]
            last, indent = (items[-1], _ITEM.match(lines[items[-1]]).group(1)) if items else (row, "  ")
            # Continuation lines of the last item (a long folded string) stay with it.
            while last + 1 < end and lines[last + 1].startswith(indent + " ") and not _ITEM.match(lines[last + 1]):
                last += 1
            lines.insert(last + 1, f"{indent}- {item}{newline}")
    else:
        after = keys.get("question", end - 1)
        while after + 1 < end and lines[after + 1][:1].isspace():  # a multi-line question
            after += 1
        lines[after + 1 : after + 1] = [f"alternates:{newline}", f"  - {item}{newline}"]
    _, written = _front_matter(lines, path)
    if {k: v for k, v in written.items() if k != "alternates"} != {k: v for k, v in meta.items() if k != "alternates"} or [
        str(a) for a in written.get("alternates") or []
    ] != [str(a) for a in meta.get("alternates") or []] + [phrasing.strip()]:
        raise FrontMatterError(f"{path}: could not add the alternate safely; edit it by hand")
    path.write_text("".join(lines), encoding="utf-8", newline="")
    return True


def _front_matter(lines: list[str], path: Path) -> tuple[int, dict]:
    """The line that closes the front matter, and what it says."""
    if not lines or lines[0].strip() != "---":
        raise FrontMatterError(f"{path}: no front matter")
    end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
    if end is None:
        raise FrontMatterError(f"{path}: the front matter is not closed")
    try:
        meta = yaml.load("".join(lines[1:end]), Loader=SAFE_LOADER) or {}
    except yaml.YAMLError as error:
        raise FrontMatterError(f"{path}: the front matter is not valid YAML ({error})") from None
    if not isinstance(meta, dict):
        raise FrontMatterError(f"{path}: the front matter is not a mapping")
    return end, meta


def _yaml_scalar(text: str) -> str:
    """``text`` as a YAML list item: plain when YAML reads it back unchanged, else double-quoted."""
    try:
        if yaml.load(f"- {text}", Loader=SAFE_LOADER) == [text] and "," not in text and "]" not in text:
            return text
    except yaml.YAMLError:
        pass
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid YAML double-quoted one


def _add_to_flow(line: str, item: str, path: Path) -> str:
    close = line.rfind("]")
    if close < 0:
        raise FrontMatterError(f"{path}: 'alternates' flow list spans lines; edit it by hand")
    inside = line[line.index("[") + 1 : close].strip()
    return line[:close].rstrip() + (f", {item}" if inside else item) + line[close:]
