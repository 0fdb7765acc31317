"""kb suggest: customers' picks become alternate phrasings an editor accepts (the Markdown file
gets one line, the next build uses it) or rejects (never proposed again)."""

from __future__ import annotations

from bots.settings import load_settings
from bots.store import Pick, open_store
from ingest import build
from kb.store import KnowledgeBase
from tests.conftest import faq


def _picks(small, *picks: tuple[str, str]) -> None:
    store = open_store(load_settings(small.config).engine)
    for i, (question, entry_id) in enumerate(picks):
        store.add_pick(Pick(1000.0 + i, "test", question, entry_id, "menu"))
    store.close()


def test_an_accepted_suggestion_lands_in_the_entry_file_and_the_next_build(small, capsys):
    path = small.add("faq/zh/refund-time.md", faq("refund-time", "退款多久到账", ["退款什么时候到"]))
    small.add("faq/zh/invoice.md", faq("invoice", "怎么开发票", ["能开发票吗"]))
    build(small.config)
    before = path.read_text(encoding="utf-8")
    _picks(small, ("钱啥时候回来", "refund-time"), ("钱啥时候回来", "refund-time"), ("发票抬头能改吗", "invoice"),
           ("能不能退", "refund-time"), ("能不能退", "invoice"))  # fmt: skip

    assert small.cli("suggest") == 0
    listed = capsys.readouterr().out
    assert "钱啥时候回来" in listed and "发票抬头能改吗" in listed
    assert "flagged" in listed and "能不能退" in listed  # picked for two entries: an editor looks
    line = next(row for row in listed.splitlines() if "钱啥时候回来" in row)
    suggestion = line.split()[0]

    assert small.cli("suggest", "--accept", suggestion) == 0
    after = path.read_text(encoding="utf-8")
    added = [row for row in after.splitlines() if row not in before.splitlines()]
    assert added == ["  - 钱啥时候回来"]  # one line; the rest of the file as the editor wrote it
    build(small.config)
    assert "钱啥时候回来" in KnowledgeBase.load(small.config.index_dir).records["refund-time"][0].alternates

    capsys.readouterr()
    assert small.cli("suggest", "--reject", next(r.split()[0] for r in listed.splitlines() if "发票抬头能改吗" in r)) == 0
    capsys.readouterr()
    assert small.cli("suggest") == 0
    remaining = capsys.readouterr().out
    assert "发票抬头能改吗" not in remaining and "钱啥时候回来" not in remaining  # decided: not proposed again
    assert small.cli("suggest", "--accept", "deadbeef") == 1
