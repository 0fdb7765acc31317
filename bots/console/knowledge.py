"""What agents find in the knowledge base: the same pipeline as ``kb ask`` (the retriever's
``ask``), its best entries shown whole: three steps, confidence, source and validity. The query
is never logged here (and travels in a POST body, so no access log has it either)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from kb.model import FaqEntry, PolicyChunk, Steps
from retriever import Retriever, format_steps

TOP = 5


@dataclass
class Found:
    entry_id: str
    kind: str
    """``faq`` or ``policy``."""
    question: str
    """The entry's question, or the policy section's heading."""
    score: float
    """The answer's confidence for the best entry; the fused score for the others."""
    steps: Steps
    language: str
    source: str
    line: int
    valid_from: date | None
    valid_until: date | None
    languages: list[str]

    def text(self) -> str:
        """The three steps as the customer would read them, ready to edit in the reply box."""
        return format_steps(self.steps, self.language)


def search(retriever: Retriever, query: str, language: str | None = None, top: int = TOP) -> tuple[str, list[Found]]:
    """(the query's language, its best entries) with each entry in ``language`` (default: the
    query's) where the entry has that version."""
    answer = retriever.ask(query)
    language = language or answer.language
    kb = retriever.kb
    found = []
    for rank, candidate in enumerate(answer.candidates[:top]):
        versions = kb.records.get(candidate.entry_id)
        if not versions:
            continue
        entry = retriever.answer_entry(candidate.entry_id, language)
        record = next((r for r in versions if r.lang == language), versions[0])
        if entry is None or entry.steps is None:
            continue
        steps = answer.steps if rank == 0 and answer.steps is not None and answer.language == language else entry.steps
        faq = record if isinstance(record, FaqEntry) else None
        found.append(
            Found(
                entry_id=candidate.entry_id,
                kind=record.kind,
                question=record.question if faq else record.heading if isinstance(record, PolicyChunk) else "",
                score=answer.confidence if rank == 0 else candidate.score,
                steps=steps,
                language=record.lang,
                source=record.source,
                line=record.line,
                valid_from=faq.valid_from if faq else None,
                valid_until=faq.valid_until if faq else None,
                languages=sorted({r.lang for r in versions}),
            )
        )
    return answer.language, found
