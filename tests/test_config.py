"""The two configuration files shipped at the root: kb.toml (the defaults of kb/config.py,
written out) and kb.fast.toml (MiniLM instead of MPNet for English)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from kb.config import Config, load_config

ROOT = Path(__file__).resolve().parent.parent


def test_kb_toml_says_what_the_defaults_are():
    written, defaults = load_config(ROOT / "kb.toml"), Config()
    assert [asdict(e) for e in written.embedders] == [asdict(e) for e in defaults.embedders]
    assert {k: asdict(v) for k, v in written.confidence.items()} == {k: asdict(v) for k, v in defaults.confidence.items()}
    assert asdict(written.thresholds) == asdict(defaults.thresholds)
    assert asdict(written.retrieval) == asdict(defaults.retrieval)


def test_the_fast_profile_ranks_english_with_e5_and_minilm_in_its_own_folder():
    fast, default = load_config(ROOT / "kb.fast.toml"), load_config(ROOT / "kb.toml")
    assert [(e.name, e.languages) for e in fast.embedders] == [("e5", ["zh", "en"]), ("minilm", ["en"]), ("use", ["zh", "en"])]
    assert fast.content_dir == default.content_dir and fast.cache_file == default.cache_file
    assert fast.index_dir != default.index_dir
