"""The texts that are embedded and searched for each record."""

from __future__ import annotations

from kb.model import FaqEntry, Phrase, PolicyChunk, Record
from kb.text import keyword_tokens, normalize, passages


def phrases_for(record: Record, known_tokens: dict[str, list[str]] | None = None) -> list[Phrase]:
    """The record's searched texts, normalised and tokenised. ``known_tokens`` (text → tokens,
    from the previous build) spares re-tokenising texts that did not change."""
    if isinstance(record, FaqEntry):
        texts = [record.question, *record.alternates]
    elif isinstance(record, PolicyChunk):
        texts = [" ".join(record.heading_path[1:]) or record.title, *passages(record.text)]
    else:  # pragma: no cover - the two kinds above are all there is
        raise TypeError(record)
    phrases, seen = [], set()
    for text in texts:
        norm = normalize(text)
        if norm and norm not in seen:
            seen.add(norm)
            tokens = known_tokens.get(norm) if known_tokens else None
            phrases.append(Phrase(record.id, record.lang, norm, tokens if tokens is not None else keyword_tokens(norm)))
    return phrases
