"""Retrieval and answers: languages and normalisation, money gate, clarify and handoff, policies."""

from __future__ import annotations

import copy
import dataclasses
from datetime import date

import pytest

from ingest import build
from kb.config import ThresholdConfig
from kb.text import detect_language, keyword_tokens, normalize
from retriever import Answer, Retriever, render_answer


def test_normalize_folds_scripts_widths_case_and_emoji():
    assert normalize("東西壞了能退嗎？") == normalize("东西坏了能退吗?")
    assert normalize("ＭＹ　ＰＡＣＫＡＧＥ ＩＳ ＬＡＴＥ！😡") == "my package is late!"
    assert normalize("  订单\t\n号 ") == "订单 号"
    assert detect_language("我的order到了吗") == "zh"
    assert detect_language("where is my order") == "en"


def test_keyword_tokens_split_chinese_words_and_keep_latin_words_whole():
    tokens = keyword_tokens(normalize("我的羽绒服订单 SO-20261130-0042 還沒發貨，can't wait 7-day"))
    assert {"羽绒", "羽绒服", "订单", "发货"} <= set(tokens)  # search mode: the long word and the short ones in it
    assert tokens.count("day") == 1 and tokens.count("so") == 1  # each Latin word once, hyphenated or not
    assert {"20261130", "0042", "can't", "wait", "7"} <= set(tokens)
    assert "的" not in tokens and "，" not in tokens and "," not in tokens
    assert keyword_tokens("can't wait 7-day") == ["can't", "wait", "7", "day"]


@pytest.mark.parametrize("question", ["东西坏了能退吗", "東西壞了能退嗎？"])
def test_chinese_quality_return(sample, question):
    answer = sample.ask(question)
    assert (answer.action, answer.entry_id, answer.language) == ("answer", "return-quality-problem", "zh")
    assert answer.steps.conclusion and answer.steps.reason and len(answer.steps.instruction) >= 2
    text = render_answer(answer)
    assert text.index("结论") < text.index("原因") < text.index("操作")


def test_a_less_certain_phrasing_offers_the_right_entry_first(sample):
    # A product named, an emoji: answered or offered first in the menu, never another entry.
    answer = sample.ask("买的耳机坏了可以退吗😭")
    assert answer.action in ("answer", "menu") and answer.candidates[0].entry_id == "return-quality-problem"
    assert answer.action == "answer" or answer.options[0].entry_id == "return-quality-problem"


def test_english_question_gets_the_english_version(sample):
    answer = sample.ask("ＨＯＷ ｌｏｎｇ does delivery take")
    assert (answer.action, answer.entry_id, answer.language) == ("answer", "shipping-time", "en")
    assert detect_language(answer.steps.conclusion) == "en"
    text = render_answer(answer)
    assert "Conclusion:" in text and "\nSteps:\n1. " in text
    assert not any(line != line.rstrip() for line in text.splitlines())  # no trailing spaces in a chat message


def test_english_question_without_an_english_faq_is_answered_from_the_english_policy(sample):
    answer = sample.ask("when do my points expire")
    assert (answer.action, answer.kind, answer.language) == ("answer", "policy", "en")
    assert answer.entry_id.startswith("membership#")
    assert "Membership Terms" in answer.steps.reason
    assert "31 december" in answer.steps.conclusion.lower()


@pytest.mark.parametrize(
    ("question", "entry"),
    [
        ("我被扣了两次钱", "payment-double-charge"),
        ("my refund still hasnt arrived after a week", "refund-not-received"),
        ("买完第二天就降价了，能退差价吗", "price-protection"),
    ],
)
def test_money_questions_go_to_a_person_with_the_policy_as_information(sample, question, entry):
    answer = sample.ask(question)
    assert (answer.action, answer.handoff_reason) == ("handoff", "money")
    assert answer.entry_id == entry and answer.steps is not None
    assert render_answer(answer).count("\n") > 3  # handoff message plus the answer as information


def test_money_gate_does_not_depend_on_the_thresholds(sample_config):
    strict = copy.deepcopy(sample_config)
    strict.thresholds = ThresholdConfig(answer=1.01, menu=1.01)
    retriever = Retriever.from_config(strict)
    assert retriever.ask("快递丢了你们赔偿吗").handoff_reason == "money"
    assert retriever.ask("东西坏了能退吗").handoff_reason == "low_confidence"


def test_off_topic_is_never_answered(sample):
    # Handed off, or at most a menu (which always offers a person too).
    for question in ("今天天气怎么样", "what's the capital of france"):
        answer = sample.ask(question)
        assert answer.action in ("handoff", "menu")
        assert "我不知道" not in render_answer(answer) and "I don't know" not in render_answer(answer)
    assert sample.ask("what's the capital of france").handoff_reason == "low_confidence"


def test_policy_hit_is_answered_in_three_steps_from_the_policy(small):
    small.add(
        "policies/zh/privacy.md",
        """\
        ---
        id: privacy
        title: 隐私政策
        ---
        # 隐私政策
        ## 3. 信息共享
        我们不会出售您的个人信息。仅在配送时向快递公司提供收件人姓名、电话和地址。
        ## 4. 删除个人信息
        您可以申请删除账户中的个人信息，我们会在 15 个工作日内处理。
        1. 打开「设置」→「账户与隐私」；
        2. 选择「删除个人信息」并验证手机号；
        3. 15 个工作日内完成，结果以短信通知。
        """,
    )
    small.add_faq("invoice", "怎么开发票", ["发票在哪里申请"])
    build(small.config)
    answer = Retriever.from_config(small.config).ask("我想删除我的个人信息，要怎么操作")
    assert answer.kind == "policy" and answer.entry_id == "privacy#2"
    assert "删除" in answer.steps.conclusion
    assert "《隐私政策》" in answer.steps.reason and "删除个人信息" in answer.steps.reason
    assert answer.steps.instruction[0].startswith("打开「设置」")


def test_an_unsure_question_gets_a_menu_of_the_best_entries(small):
    small.add_faq("return-clothes", "衣服怎么退货", ["衣服不合适想退"])
    small.add_faq("return-shoes", "鞋子怎么退货", ["鞋子不合适想退"])
    small.add_faq("invoice", "怎么开发票", ["发票在哪里申请"])
    small.add_faq("delivery", "快递几天能到", ["什么时候发货"])
    build(small.config)
    small.config.thresholds = ThresholdConfig(answer=0.999, menu=0.01, menu_size=3)
    answer = Retriever.from_config(small.config).ask("不合适怎么退货")
    assert answer.action == "menu" and answer.handoff_reason is None
    assert [o.entry_id for o in answer.options] == [c.entry_id for c in answer.candidates[:3]]
    assert {"return-clothes", "return-shoes"} <= {o.entry_id for o in answer.options}
    text = render_answer(answer)
    assert "猜你想问" in text and "3." in text and "回复 0" in text


def test_below_the_menu_threshold_hands_off(small):
    small.add_faq("return-clothes", "衣服怎么退货", ["衣服不合适想退"])
    build(small.config)
    small.config.thresholds = ThresholdConfig(answer=1.01, menu=1.01)
    answer = Retriever.from_config(small.config).ask("不合适怎么退货")
    assert (answer.action, answer.handoff_reason, answer.options) == ("handoff", "low_confidence", [])


def test_expired_entry_is_not_answered(small):
    small.add_faq("sale", "双十一满减规则", ["满300减40怎么算"], extra="valid_until: 2026-11-12\n")
    small.add_faq("invoice", "怎么开发票", ["发票在哪里申请"])
    build(small.config)
    before = Retriever(small.config, Retriever.from_config(small.config).kb, today=date(2026, 11, 1))
    after = Retriever(small.config, before.kb, today=date(2026, 11, 13))
    assert before.ask("满300减40是怎么算的").candidates[0].entry_id == "sale"
    assert "sale" not in [c.entry_id for c in after.ask("满300减40是怎么算的").candidates]


def test_keyword_search_catches_an_exact_term(sample):
    answer = sample.ask("运费险")
    assert answer.candidates[0].entry_id == "return-shipping-fee"


def test_long_binary_and_empty_questions_get_a_polite_result(sample):
    assert sample.ask("").action == "handoff"
    assert sample.ask("\x00\x01\x02").action == "handoff"
    assert sample.ask("😀😀😀").action == "handoff"
    long = sample.ask("请问东西坏了能退吗" * 200)
    assert long.truncated and long.entry_id == "return-quality-problem"
    assert "较长" in render_answer(long)


def test_dense_retrieval_runs_every_embedder_of_the_question_language_at_once(sample):
    from retriever.components import DenseRetrievers

    parallel = sample._state[1].get_component("dense")
    assert isinstance(parallel, DenseRetrievers)
    branches = parallel._branches
    serial = DenseRetrievers(branches, lanes=1)
    for question, language in (("where is my parcel", "en"), ("我的快递到哪了", "zh")):
        text = normalize(question)
        hits, alone = parallel.run(text, language), serial.run(text, language)
        for name, branch in branches.items():
            assert bool(hits[name].scores) == (language in branch.languages)
            expected = branch.search.run(branch.load().embed([text])[0] if language in branch.languages else None)["hits"]
            assert hits[name].scores == pytest.approx(expected.scores)
            assert alone[name].scores == pytest.approx(expected.scores)
    assert not any(h.scores for h in parallel.run("", "zh").values())


def test_agreement_is_the_share_of_embedders_that_rank_the_entry_first(sample):
    from retriever.components import EntryHits, ScoreFusion

    a, b, c = list(sample.kb.records)[:3]
    mpnet = EntryHits("mpnet", 1.5, {a: 0.9, b: 0.8, c: 0.1}, {}, 0.0)
    use = EntryHits("use", 0.5, {a: 0.5, b: 0.7}, {}, 0.0)
    keyword = EntryHits("keyword", 0.05, {c: 1.0}, {}, 0.0)
    fusion = ScoreFusion(sample.kb.records, 0.0)
    candidates = fusion.run([mpnet, use, keyword])["candidates"]
    assert {x.entry_id: x.agreement for x in candidates} == {a: 0.5, b: 0.5, c: 0.0}
    alone = fusion.run([mpnet, keyword])["candidates"]
    assert alone[0].entry_id == a and alone[0].agreement == 1.0
    # An entry that cannot be answered today (an expired promotion) takes no embedder's vote.
    sale = "promotion-year-end-sale"
    e5 = EntryHits("e5", 1.0, {sale: 0.95, a: 0.9}, {}, 0.0)
    after_sale = ScoreFusion(sample.kb.records, 0.0, today=date(2027, 1, 1)).run([e5, use])["candidates"]
    assert sale not in [x.entry_id for x in after_sale] and after_sale[0].entry_id == a and after_sale[0].agreement == 0.5


def test_the_policy_penalty_goes_by_the_kind_of_record_not_by_the_id():
    from kb.model import FaqEntry, PolicyChunk, Steps
    from retriever.components import EntryHits, ScoreFusion

    faq = FaqEntry("faq#1", "zh", "怎么退货", [], Steps("可以。", "", []))  # an id that looks like a chunk's
    chunk = PolicyChunk("returns-section", "returns", "zh", "退货", ["退货"], "七天无理由退货。", [])
    records = {"faq#1": [faq], "returns-section": [chunk]}
    hits = EntryHits("e5", 1.0, {"faq#1": 0.7, "returns-section": 0.72}, {}, 0.0)
    assert ScoreFusion(records, 0.0).run([hits])["candidates"][0].entry_id == "returns-section"
    penalised = ScoreFusion(records, 0.05).run([hits])["candidates"]
    assert [c.entry_id for c in penalised] == ["faq#1", "returns-section"]
    assert penalised[0].score == pytest.approx(0.7) and penalised[1].score == pytest.approx(0.67)


def test_the_embedders_agreeing_raises_the_confidence(sample):
    answer = sample.ask("我的快递到哪了")
    assert answer.agreement == 1.0
    router = sample._state[1].get_component("router")
    candidates = (
        sample._state[1]
        .get_component("fusion")
        .run(list(sample._state[1].get_component("dense").run(normalize("我的快递到哪了"), "zh").values()))["candidates"]
    )
    assert candidates[0].entry_id == answer.entry_id
    candidates[0].agreement = 0.5
    disagreeing = router.run(candidates, normalize("我的快递到哪了"), "zh")["decision"]
    assert disagreeing.confidence < answer.confidence


def test_branches_are_split_into_lanes_slowest_first():
    from retriever.components import DenseRetrievers

    dense = DenseRetrievers(dict.fromkeys("abcd"), lanes=2)
    dense._seconds.update(a=0.015, b=0.005, c=0.003, d=0.001)
    assert dense._plan(["a", "b", "c", "d"]) == [["a"], ["b", "c", "d"]]
    assert dense._plan(["b", "c"]) == [["b"], ["c"]]
    assert DenseRetrievers({"a": None}, lanes=4)._plan(["a"]) == [["a"]]


def test_workers_share_answers_through_the_state_store_except_to_questions_with_personal_data(sample_config, sample, state):
    computed: list[str] = []

    class Worker(Retriever):
        def _ask(self, question: str) -> Answer:
            computed.append(question)
            return super()._ask(question)

    first, second = (Worker(sample_config, sample.kb, shared=state.shared()) for _ in range(2))
    answer = first.ask("东西坏了能退吗")
    again = second.ask("東西壞了能退嗎")  # the same question once normalised, on the other worker
    assert computed == ["东西坏了能退吗"]
    assert again.question == "東西壞了能退嗎" and again.entry_id == "return-quality-problem"
    assert dataclasses.replace(again, question=answer.question, latency_ms=answer.latency_ms) == answer
    assert Answer.from_json(answer.to_json()) == dataclasses.replace(answer, question="")
    private = "我的手机13812345678收不到退款"
    first.ask(private)
    second.ask(private)
    assert computed.count(private) == 2  # never shared: each worker answered it itself
