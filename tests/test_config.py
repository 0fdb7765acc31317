"""The two configuration files shipped at the root: kb.toml (the defaults of kb/config.py,
written out) and kb.fast.toml (MiniLM instead of MPNet for English); the loader's type checks."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import pytest

from bots.settings import load_settings
from kb.config import Config, ConfigError, load_config
from kb.environment import DEFAULTS, set_environment_defaults

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


def _load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "kb.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[retrieval]\ntop_k = "200"\n', r"retrieval\.top_k must be a whole number, not '200'"),
        ("[retrieval]\ntop_k = 2.5\n", r"retrieval\.top_k must be a whole number"),
        ("[thresholds]\nanswer = true\n", r"thresholds\.answer must be a number, not True"),
        ('[confidence.zh]\nbias = "-3"\n', r"confidence\.zh\.bias must be a number"),
        ('[[embedder]]\nname = "e5"\nlanguages = "zh"\n', r"embedder\[0\]\.languages must be a list"),
        ('[[embedder]]\nname = "e5"\nweight = "1"\n', r"embedder\[0\]\.weight must be a number"),
        ("index_dir = 3\n", r"index_dir must be a path in quotes"),
        ("retrieval = 3\n", r"retrieval must be a table"),
        ("[retrieval]\ntop_kk = 3\n", r"unknown setting 'retrieval\.top_kk'"),
        ('content_dirr = "content"\n', r"unknown setting 'content_dirr'"),
    ],
)
def test_a_value_of_the_wrong_type_names_the_setting_and_the_file(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as error:
        _load(tmp_path, text)
    assert str(error.value).startswith(f"{tmp_path / 'kb.toml'}: ")


def test_numbers_paths_and_tables_of_the_right_type_load_as_their_type(tmp_path):
    config = _load(tmp_path, 'index_dir = "built"\n[retrieval]\nwhitening = 2\n[confidence.zh]\nbias = -3\n')
    assert config.retrieval.whitening == 2.0 and isinstance(config.retrieval.whitening, float)
    assert config.index_dir == tmp_path / "built"
    assert config.confidence["zh"].bias == -3.0 and config.confidence["en"] == Config().confidence["en"]


def test_a_later_section_is_checked_when_it_is_read(tmp_path):
    config = _load(tmp_path, '[engine]\nmax_failed_answers = "2"\n')
    with pytest.raises(ConfigError, match=r"kb\.toml: engine\.max_failed_answers must be a whole number, not '2'"):
        load_settings(config)
    config = _load(tmp_path, '[engine]\nstate_path = "state/s.sqlite"\nmax_failed_answers = 3\n')
    engine = load_settings(config).engine
    assert (engine.state_path, engine.max_failed_answers) == (tmp_path / "state" / "s.sqlite", 3)


def test_loading_the_configuration_leaves_the_environment_alone(tmp_path, monkeypatch):
    for name in DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    _load(tmp_path, "[retrieval]\ntop_k = 10\n")
    assert not set(DEFAULTS) & set(os.environ)
    set_environment_defaults()
    assert {name: os.environ[name] for name in DEFAULTS} == DEFAULTS


def test_the_benchmarks_copy_of_the_configuration_says_the_same_with_its_own_state(tmp_path):
    from eval.kb_serve import configuration_copy

    state = tmp_path / "state.sqlite"
    copied = load_config(configuration_copy(ROOT / "kb.toml", tmp_path / "kb.toml", {"engine": {"state_path": str(state)}}))
    original = load_config(ROOT / "kb.toml")
    assert [asdict(e) for e in copied.embedders] == [asdict(e) for e in original.embedders]
    assert asdict(copied.retrieval) == asdict(original.retrieval) and asdict(copied.thresholds) == asdict(original.thresholds)
    for attr in ("content_dir", "index_dir", "cache_file"):
        assert getattr(copied, attr) == getattr(original, attr)
    assert load_settings(copied).engine.state_path == state
