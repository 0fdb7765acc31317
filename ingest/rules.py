"""``content/rules/*.yml``: money keywords and patterns, handoff triggers, forbidden deflecting phrases."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from ingest.markdown import SAFE_LOADER
from ingest.problems import ContentError, Problem
from kb.text import normalize

MONEY_FILE = "rules/money.yml"
DEFLECTION_FILE = "rules/deflection.yml"
HANDOFF_FILE = "rules/handoff.yml"
HANDOFF_TRIGGERS = ("requested", "upset", "privacy")


def _load(path: Path, display: str) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise ContentError(
            Problem(display, mark.line + 1 if mark else 1, f"not valid YAML: {getattr(error, 'problem', error)}")
        ) from None
    if not isinstance(data, dict):
        raise ContentError(Problem(display, 1, "expected one section per language (zh:, en:)"))
    return data


def _display(path: Path, display_root: Path) -> str:
    return str(path.relative_to(display_root)) if path.is_relative_to(display_root) else str(path)


def _keywords_and_patterns(section: Any, where: str, display: str, lines: list[str]) -> tuple[list[str], list[str]]:
    if not isinstance(section, dict):
        raise ContentError(Problem(display, 1, f"section '{where}' must have 'keywords' and 'patterns' lists"))
    keywords = [normalize(str(k)) for k in section.get("keywords") or [] if str(k).strip()]
    patterns = []
    for pattern in section.get("patterns") or []:
        try:
            re.compile(pattern)
        except re.error as error:
            line = next((i + 1 for i, row in enumerate(lines) if pattern in row), 1)
            raise ContentError(Problem(display, line, f"bad pattern {pattern!r}: {error}")) from None
        patterns.append(pattern)
    return keywords, patterns


def load_money_rules(content_dir: Path, display_root: Path) -> dict[str, list[str]]:
    """All languages' keywords and patterns together: a customer may mix languages."""
    path = content_dir / MONEY_FILE
    display = _display(path, display_root)
    data = _load(path, display)
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    keywords: list[str] = []
    patterns: list[str] = []
    for lang, section in data.items():
        more_keywords, more_patterns = _keywords_and_patterns(section, str(lang), display, lines)
        keywords += more_keywords
        patterns += more_patterns
    return {"keywords": sorted(set(keywords)), "patterns": patterns}


def load_handoff_rules(content_dir: Path, display_root: Path) -> dict[str, dict[str, list[str]]]:
    """Per trigger (requested, upset, privacy), all languages' keywords and patterns together."""
    path = content_dir / HANDOFF_FILE
    display = _display(path, display_root)
    data = _load(path, display)
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    rules: dict[str, dict[str, list[str]]] = {t: {"keywords": [], "patterns": []} for t in HANDOFF_TRIGGERS}
    for lang, triggers in data.items():
        if not isinstance(triggers, dict):
            raise ContentError(Problem(display, 1, f"section '{lang}' must list triggers: {', '.join(HANDOFF_TRIGGERS)}"))
        for trigger, section in triggers.items():
            if trigger not in rules:
                line = next((i + 1 for i, row in enumerate(lines) if row.strip().startswith(f"{trigger}:")), 1)
                raise ContentError(Problem(display, line, f"unknown trigger '{trigger}' (known: {', '.join(HANDOFF_TRIGGERS)})"))
            keywords, patterns = _keywords_and_patterns(section, f"{lang}.{trigger}", display, lines)
            rules[trigger]["keywords"] += keywords
            rules[trigger]["patterns"] += patterns
    return rules


def load_deflection_phrases(content_dir: Path, display_root: Path) -> list[str]:
    path = content_dir / DEFLECTION_FILE
    display = _display(path, display_root)
    data = _load(path, display)
    return [normalize(str(p)) for phrases in data.values() for p in (phrases or []) if str(p).strip()]
