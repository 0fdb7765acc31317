"""Content → a knowledge-base build: parse, validate, chunk, embed, write.

Public API: :func:`build`, :func:`build_records`, :func:`lint`, :func:`load_content`,
:func:`load_money_rules`, :class:`Problem`, :class:`BuildFailed`, :class:`BuildRefused`.
"""

from ingest.build import BuildFailed, BuildRefused, BuildReport, build, build_records
from ingest.content import Content, load_content
from ingest.lint import lint
from ingest.problems import Problem
from ingest.rules import load_money_rules

__all__ = [
    "BuildFailed",
    "BuildRefused",
    "BuildReport",
    "Content",
    "Problem",
    "build",
    "build_records",
    "lint",
    "load_content",
    "load_money_rules",
]
