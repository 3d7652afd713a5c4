"""A model's name (its output folder and its label in a comparison) from its ``cfg.model`` node."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Any


def _get(node: Any, key: str) -> Any:
    if node is None:
        return None
    if isinstance(node, Mapping):
        return node.get(key)
    return getattr(node, key, None)


def file_stem(file: Any) -> str | None:
    """``our_vgg`` for ``/x/our_vgg.keras`` (and for a SavedModel folder ``/x/our_vgg/``); ``None`` without a file."""
    if file is None or str(file).strip() == "":
        return None
    path = PurePath(str(file).rstrip("/\\"))
    name = path.name
    for suffix in (".keras", ".hdf5", ".h5"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or name
    return name


def model_name(model_cfg: Any) -> str | None:
    """``model.name`` when set, else the stem of the user's ``model.file``, else ``model.architecture``.

    Two different model files of one sweep (``model.file=a.keras,b.keras``) therefore get two folders
    ``a/`` and ``b/``; ``model.name=...`` (or a lab preset's ``name``) overrides this.
    Works on a plain mapping or an OmegaConf node; ``None`` when nothing names the model.
    """
    name = _get(model_cfg, "name")
    if name is not None and str(name).strip():
        return str(name)
    stem = file_stem(_get(model_cfg, "file"))
    if stem:
        return stem
    architecture = _get(model_cfg, "architecture")
    return None if architecture is None else str(architecture)
