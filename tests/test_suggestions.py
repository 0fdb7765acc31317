"""Phrasings learnt from customers' picks: which are suggested, and writing one into an entry."""

from __future__ import annotations

import pytest

from ingest.suggestions import FrontMatterError, add_alternate, tally
from kb.text import normalize

ENTRY = """\
---
id: return-quality-problem
question: 东西坏了能退吗？
alternates:
  - 商品有质量问题怎么退
  - 收到就是坏的   # from a customer
category: returns
---

## 结论
可以。
"""


def test_picks_of_one_phrasing_are_counted_together_and_conflicts_flagged():
    picks = [
        ("东西坏了怎么退", "return"),
        ("東西壞了怎麼退", "return"),  # the same words in traditional characters
        ("发票在哪开", "invoice"),
        ("运费谁出", "shipping"),
        ("运费谁出", "return"),  # picked for another entry by another customer
        ("东西坏了能退吗？", "return"),  # the entry's own question: nothing to learn
    ]
    result = tally(picks, min_picks=1, known=["东西坏了能退吗？"])
    assert [(s.phrasing, s.entry_id, s.picks) for s in result.suggestions] == [
        ("东西坏了怎么退", "return", 2),
        ("发票在哪开", "invoice", 1),
    ]
    assert [(c.phrasing, c.picks) for c in result.conflicts] == [("运费谁出", {"shipping": 1, "return": 1})]
    assert tally(picks, min_picks=2).by_entry() == {"return": ["东西坏了怎么退"]}


def test_an_alternate_is_added_as_one_line_and_the_rest_of_the_file_stays(tmp_path):
    path = tmp_path / "entry.md"
    path.write_text(ENTRY, encoding="utf-8")
    assert add_alternate(path, "买的东西坏了咋退") is True
    after = path.read_text(encoding="utf-8").splitlines()
    before = ENTRY.splitlines()
    assert after[:6] + after[7:] == before  # one line more, nothing else changed (the comment stays)
    assert after[6] == "  - 买的东西坏了咋退"
    assert add_alternate(path, "買的東西壞了咋退") is False  # already there, after normalisation
    assert path.read_text(encoding="utf-8").splitlines() == after


def test_flow_lists_missing_keys_and_awkward_text(tmp_path):
    flow = tmp_path / "flow.md"
    flow.write_text("---\nid: a\nquestion: q\nalternates: [x, y]  # short\n---\nbody\n", encoding="utf-8")
    add_alternate(flow, "z: with a colon, and a comma")
    assert flow.read_text(encoding="utf-8").splitlines()[3] == 'alternates: [x, y, "z: with a colon, and a comma"]  # short'
    bare = tmp_path / "bare.md"
    bare.write_text("---\r\nid: b\r\nquestion: 怎么开发票\r\ncategory: invoice\r\n---\r\nbody\r\n", encoding="utf-8", newline="")
    add_alternate(bare, "# 发票")
    text = bare.read_bytes().decode("utf-8")
    assert text == '---\r\nid: b\r\nquestion: 怎么开发票\r\nalternates:\r\n  - "# 发票"\r\ncategory: invoice\r\n---\r\nbody\r\n'


def test_a_file_that_cannot_be_edited_safely_is_refused(tmp_path):
    path = tmp_path / "odd.md"
    path.write_text("no front matter\n", encoding="utf-8")
    with pytest.raises(FrontMatterError):
        add_alternate(path, "x")
    path.write_text("---\nid: a\nalternates: 5\n---\n", encoding="utf-8")
    with pytest.raises(FrontMatterError):
        add_alternate(path, "x")
    assert normalize("x") == "x"


def test_a_menu_holding_the_right_entry_is_a_pick_and_nothing_else_is():
    from eval.dataset import Query
    from eval.learn import picks_of
    from eval.run import Outcome
    from retriever import Answer, RunnerUp

    def asked(text: str, gold: str | None, action: str, options: tuple[str, ...] = ()) -> Outcome:
        answer = Answer(text, "zh", action, 0.5, options=[RunnerUp(o, o, 0.5) for o in options])
        return Outcome(Query(text, gold), answer)

    outcomes = [
        asked("坏了咋退", "return", "menu", ("invoice", "return")),
        asked("发票呢", "invoice", "menu", ("return",)),  # the right entry was not offered
        asked("运费", "shipping", "answer"),
        asked("天气", None, "menu", ("return",)),  # out of scope: no entry is right
    ]
    assert picks_of(outcomes) == [("坏了咋退", "return")]


def test_min_picks_is_read_from_the_learning_section(tmp_path):
    from kb.config import load_config

    path = tmp_path / "kb.toml"
    path.write_text("[learning]\nmin_picks = 3\n", encoding="utf-8")
    assert load_config(path).learning.min_picks == 3
