"""Hybrid retrieval, confidence, abstention and three-step answers over a built knowledge base.

Public API: :class:`Retriever` (``ask``), :class:`Answer`, :func:`render_answer`, :func:`confidence`.
"""

import kb.config  # noqa: F401  (sets HAYSTACK_TELEMETRY_ENABLED=False and HF_HUB_OFFLINE=1 before Haystack loads)
from retriever.answer import Answer, RunnerUp
from retriever.confidence import confidence
from retriever.pipeline import IndexMismatch, Retriever
from retriever.render import format_steps, render_answer

__all__ = ["Answer", "IndexMismatch", "Retriever", "RunnerUp", "confidence", "format_steps", "render_answer"]
