"""Each lint rule on a broken fixture, with the reported ``path:line`` asserted."""

from __future__ import annotations

from datetime import date

from ingest import lint
from tests.conftest import faq


def messages(small, today: date | None = None) -> list[str]:
    return [str(p) for p in lint(small.config, today=today, content=None)]


def test_clean_content_has_no_problems(small):
    small.add_faq("return-quality", "东西坏了能退吗", ["收到的商品有质量问题怎么办"])
    small.add_faq("invoice", "怎么开发票", ["发票在哪里申请"])
    assert messages(small) == []


def test_malformed_front_matter_names_its_line(small):
    small.add("faq/zh/broken.md", "---\nid: broken\nquestion: [unclosed\nalternates: []\n---\n\n## 结论\nx\n")
    (problem,) = lint(small.config)
    assert problem.path.endswith("faq/zh/broken.md")
    assert problem.line in (3, 4)  # YAML reports the flow sequence that never closes
    assert "malformed front matter" in problem.message


def test_unclosed_front_matter(small):
    small.add("faq/zh/open.md", "---\nid: open\nquestion: 你好\n\n## 结论\nx\n")
    (problem,) = lint(small.config)
    assert (problem.line, problem.severity) == (1, "error")
    assert "not closed" in problem.message


def test_missing_section(small):
    path = small.add(
        "faq/zh/no-steps.md",
        "---\nid: no-steps\nquestion: 运费多少\nalternates: [邮费]\n---\n\n## 结论\n8 元。\n\n## 原因\n《配送政策》。\n",
    )
    (problem,) = lint(small.config)
    assert "missing section '## 操作'" in problem.message
    assert problem.line == len(path.read_text(encoding="utf-8").splitlines())


def test_duplicate_id_points_at_the_second_file(small):
    small.add_faq("same", "怎么开发票", ["发票在哪里申请"])
    small.add("faq/zh/other.md", small_faq_text("same", "运费多少钱", ["邮费怎么算"]))
    (problem,) = [p for p in lint(small.config) if "duplicate id" in p.message]
    # Files are read in name order: other.md claims the id first, same.md is the duplicate.
    assert problem.path.endswith("faq/zh/same.md")
    assert problem.line == 2
    assert "other.md:2" in problem.message


def test_one_alternate_in_two_entries(small):
    small.add_faq("refund-timing", "退款多久到账", ["钱什么时候退回来"])
    small.add_faq("refund-method", "退款退到哪里", ["退款去哪了", "钱什么时候退回来"])
    (problem,) = [p for p in lint(small.config) if "also a phrasing" in p.message]
    assert problem.path.endswith("refund-timing.md")  # refund-method.md is read first
    assert problem.line == 5
    assert "'refund-method'" in problem.message


def test_near_duplicate_questions_warn(small):
    small.add_faq("a", "怎么申请退货", ["退货流程是什么"])
    small.add_faq("b", "如何申请退货？", ["退货的步骤"])
    small.config.near_duplicate_similarity = 0.95
    (problem,) = [p for p in lint(small.config) if "almost the same" in p.message]
    assert problem.severity == "warning"
    assert problem.line == 3  # the 'question:' line


def test_deflecting_phrase_in_an_answer(small):
    small.add("rules/deflection.yml", "zh:\n  - 你找别人吧\nen:\n  - ask someone else\n")
    path = small.add_faq("rude", "我的快递呢", ["快递到哪了"], steps="1. 这个你找别人吧。\n2. 谢谢。")
    (problem,) = lint(small.config)
    assert problem.severity == "error"
    assert "deflecting phrase" in problem.message
    assert "你找别人吧" in path.read_text(encoding="utf-8").splitlines()[problem.line - 1]


def test_expired_entry_warns_and_cli_exits_zero(small, capsys, monkeypatch):
    small.add_faq("sale", "双十一满减规则", ["满300减40怎么算"], extra="valid_until: 2020-11-12\n")
    (problem,) = lint(small.config, today=date(2026, 1, 1))
    assert (problem.severity, problem.line) == ("warning", 6)
    assert "expired" in problem.message
    monkeypatch.chdir(small.root)
    assert small.cli("lint") == 0


def test_cli_exits_non_zero_on_errors(small, capsys):
    small.add("faq/zh/open.md", "---\nid: open\n")
    assert small.cli("lint") == 1
    assert "faq/zh/open.md:1:" in capsys.readouterr().out


def small_faq_text(entry_id: str, question: str, alternates: list[str]) -> str:
    return faq(entry_id, question, alternates)
