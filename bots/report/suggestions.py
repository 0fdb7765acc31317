"""Alternate phrasings proposed from what customers picked, for editors to accept or reject.

A menu pick, or "solved" after an unsure answer, labels the customer's own words with an entry
(the store's picks, masked). :func:`pending` tallies them (:func:`ingest.suggestions.tally`): a
phrasing picked often enough for one entry is suggested, one picked for different entries is
flagged. :func:`accept` writes the phrasing into the entry's Markdown front matter (the next
build uses it); :func:`reject` remembers the decision, so it is not proposed again.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bots.store import Learning
from ingest.suggestions import Conflict, add_alternate, tally
from kb.model import FaqEntry, Record
from kb.text import detect_language, normalize

ACCEPTED = "accepted"
REJECTED = "rejected"


@dataclass(frozen=True)
class Pending:
    id: str
    """Stable: the same phrasing for the same entry always has the same id."""
    phrasing: str
    entry_id: str
    picks: int


class SuggestionError(LookupError):
    """No such suggestion, or its entry has no file to write to."""


def suggestion_id(phrasing: str, entry_id: str) -> str:
    return hashlib.sha1(f"{entry_id}\n{normalize(phrasing)}".encode()).hexdigest()[:8]


def pending(store: Learning, records: Mapping[str, Sequence[Record]], min_picks: int = 1) -> tuple[list[Pending], list[Conflict]]:
    """The suggestions not yet decided (most picked first), and the flagged phrasings."""
    known = [p for versions in records.values() for r in versions if isinstance(r, FaqEntry) for p in (r.question, *r.alternates)]
    picks = [(p.question, p.entry_id) for p in store.picks() if p.entry_id in records]
    result = tally(picks, min_picks=min_picks, known=known)
    decided = store.decisions()
    suggestions = [Pending(suggestion_id(s.phrasing, s.entry_id), s.phrasing, s.entry_id, s.picks) for s in result.suggestions]
    return [s for s in suggestions if s.id not in decided], result.conflicts


def _find(store: Learning, records: Mapping[str, Sequence[Record]], wanted: str) -> Pending:
    suggestions, _ = pending(store, records, min_picks=1)
    for suggestion in suggestions:
        if suggestion.id == wanted:
            return suggestion
    raise SuggestionError(f"no pending suggestion {wanted} (kb suggest lists them)")


def entry_file(records: Sequence[Record], phrasing: str, roots: Sequence[Path]) -> Path:
    """The Markdown file of the entry's version in the phrasing's language (else the first)."""
    versions = [r for r in records if isinstance(r, FaqEntry)]
    if not versions:
        raise SuggestionError("the entry is a policy section, not an FAQ entry: add the phrasing by hand")
    language = detect_language(phrasing)
    version = next((r for r in versions if r.lang == language), versions[0])
    for root in roots:
        path = Path(version.source) if Path(version.source).is_absolute() else root / version.source
        if path.is_file():
            return path
    raise SuggestionError(f"cannot find {version.source}")


def accept(
    store: Learning, records: Mapping[str, Sequence[Record]], wanted: str, roots: Sequence[Path], now: float | None = None
) -> tuple[Pending, Path]:
    """Write the suggestion into its entry's file; (the suggestion, the file)."""
    suggestion = _find(store, records, wanted)
    path = entry_file(records[suggestion.entry_id], suggestion.phrasing, roots)
    add_alternate(path, suggestion.phrasing)
    store.decide(suggestion.id, ACCEPTED, time.time() if now is None else now)
    return suggestion, path


def reject(store: Learning, records: Mapping[str, Sequence[Record]], wanted: str, now: float | None = None) -> Pending:
    suggestion = _find(store, records, wanted)
    store.decide(suggestion.id, REJECTED, time.time() if now is None else now)
    return suggestion
