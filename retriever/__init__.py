"""Hybrid retrieval, confidence, abstention and three-step answers over a built knowledge base.

Public API: :class:`Retriever` (``ask``), :class:`Answer`, :func:`render_answer`, :func:`confidence`.
"""

from retriever.answer import Answer, RunnerUp
from retriever.confidence import confidence
from retriever.pipeline import IndexMismatch, Retriever, SharedAnswers
from retriever.render import format_steps, render_answer

__all__ = ["Answer", "IndexMismatch", "Retriever", "RunnerUp", "SharedAnswers", "confidence", "format_steps", "render_answer"]
