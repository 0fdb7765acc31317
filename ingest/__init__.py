"""Content → a knowledge-base build: parse, validate, chunk, embed, write.

Public API: :func:`build`, :func:`build_records`, :func:`lint`, :func:`load_content`,
:func:`load_money_rules`, :class:`Problem`, :class:`BuildFailed`.
"""

from ingest.build import BuildFailed, BuildReport, build, build_records
from ingest.content import Content, load_content
from ingest.lint import lint
from ingest.problems import Problem
from ingest.rules import load_money_rules

__all__ = [
    "BuildFailed",
    "BuildReport",
    "Content",
    "Problem",
    "build",
    "build_records",
    "lint",
    "load_content",
    "load_money_rules",
]
