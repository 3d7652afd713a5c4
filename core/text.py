"""Small text and value helpers: one-line error messages and OmegaConf-free plain values."""

from __future__ import annotations

from typing import Any


def first_line(error: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (or its type name), at most ``limit`` characters."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:limit]


def plain(value: Any) -> Any:
    """OmegaConf containers -> builtin lists/dicts (resolved); anything else unchanged."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return value
