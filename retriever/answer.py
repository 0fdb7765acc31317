"""The result of a question: what to do, and the three-step answer in the customer's language."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from kb.model import FaqEntry, PolicyChunk, Record, Steps
from kb.text import normalize, passages

HANDOFF_REASONS = ("money", "low_confidence")


@dataclass
class RunnerUp:
    entry_id: str
    question: str
    score: float


@dataclass
class Answer:
    """What the retriever decided for one question.

    ``action`` is ``answer`` (``steps`` is the answer), ``menu`` (``options`` are the entries the
    customer may have meant, best first, to pick from; a person is always offered too) or
    ``handoff`` (``handoff_reason`` says why; ``steps``, when present, is relevant information to
    show while the customer waits).
    """

    question: str
    language: str
    action: str
    confidence: float
    entry_id: str | None = None
    kind: str | None = None
    steps: Steps | None = None
    handoff_reason: str | None = None
    options: list[RunnerUp] = field(default_factory=list)
    candidates: list[RunnerUp] = field(default_factory=list)
    """The best entries, best first, whatever the action (the runners-up follow the first)."""
    truncated: bool = False
    latency_ms: float = 0.0
    build: str = ""
    similarity: float = 0.0
    """How close the question is to the top entry (raw vectors)."""
    score: float = 0.0
    """The top entry's fused score on the whitened vectors; with ``margin``, what ``confidence``
    is made of."""
    margin: float = 0.0
    """How far the top entry leads the runner-up."""
    agreement: float = 0.0
    """Share of the embedders whose own ranking puts the top entry first."""

    @property
    def answered(self) -> bool:
        return self.action == "answer"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["confidence"] = round(self.confidence, 4)
        data["latency_ms"] = round(self.latency_ms, 2)
        return data

    def to_json(self) -> str:
        """The decision as JSON, without the customer's question (what workers share: nothing
        the customer wrote); :meth:`from_json` reads it back."""
        return json.dumps(asdict(replace(self, question="")), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Answer:
        data = json.loads(text)
        steps = Steps(**data["steps"]) if data["steps"] else None
        options = [RunnerUp(**o) for o in data["options"]]
        candidates = [RunnerUp(**c) for c in data["candidates"]]
        return cls(**{**data, "steps": steps, "options": options, "candidates": candidates})


def pick_version(versions: list[Record], language: str) -> Record:
    """The version in the customer's language where there is one."""
    return next((r for r in versions if r.lang == language), versions[0])


def display_question(versions: list[Record], language: str) -> str:
    record = pick_version(versions, language)
    return record.question if isinstance(record, FaqEntry) else record.heading


def steps_for(record: Record, best_phrase_text: str | None = None) -> Steps:
    """The three steps of an FAQ entry, or extracted from a policy chunk."""
    if isinstance(record, FaqEntry):
        return record.steps
    return policy_steps(record, best_phrase_text)


def policy_steps(chunk: PolicyChunk, best_phrase_text: str | None) -> Steps:
    """A policy section as three steps: its most relevant passage, the policy and section it comes
    from, and the section's numbered steps (or a pointer to the whole policy)."""
    pieces = passages(chunk.text)
    conclusion = next((p for p in pieces if normalize(p) == best_phrase_text), None)
    if conclusion is None:
        conclusion = next((p for p in pieces if not p.lstrip()[:1].isdigit()), pieces[0] if pieces else chunk.heading)
    section = " › ".join(chunk.heading_path[1:]) or chunk.title
    if chunk.lang == "zh":
        reason = f"依据《{chunk.title}》「{section}」。"
        pointer = [f"完整规则请在「帮助中心」查看《{chunk.title}》；还有疑问，回复「人工」由客服为您解答。"]
    else:
        reason = f"This follows our {chunk.title}, section “{section}”."
        pointer = [
            f"Read the full {chunk.title} in the Help Centre; if anything is unclear, reply “agent” and a colleague will help."
        ]
    return Steps(conclusion.strip(), reason, chunk.steps or pointer)
