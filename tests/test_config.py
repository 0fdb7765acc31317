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


def test_an_older_file_with_clarify_sets_the_menu_threshold(tmp_path):
    old = tmp_path / "kb.toml"
    old.write_text("[thresholds]\nanswer = 0.8\nclarify = 0.4\nclarify_gap = 0.02\n", encoding="utf-8")
    thresholds = load_config(old).thresholds
    assert (thresholds.answer, thresholds.menu, thresholds.clarify) == (0.8, 0.4, 0.4)
    new = tmp_path / "new.toml"
    new.write_text("[thresholds]\nmenu = 0.3\n", encoding="utf-8")
    assert (load_config(new).thresholds.menu, load_config(new).thresholds.clarify) == (0.3, 0.3)
