"""Files behind a report page: reading the run's JSON, relative links and Pillow thumbnails."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from core.errors import InputDataError
from core.io import atomic_path

log = logging.getLogger(__name__)

THUMBS_DIR = "thumbs"


def read_json(path: Path, what: str = "JSON object") -> dict:
    """A JSON object from ``path``; a missing or malformed file raises :class:`InputDataError`."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError(path, "file not found (nothing to build the HTML report from)")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputDataError(path, f"cannot read JSON: {error}") from error
    if not isinstance(value, dict):
        raise InputDataError(path, f"is not a {what}")
    return value


def read_jsonl(path: Path) -> list[dict]:
    """Every line of a JSON-lines file as an object; a malformed line raises :class:`InputDataError`."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError(path, "file not found (nothing to build the HTML report from)")
    entries = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as error:
                raise InputDataError(path, f"line {number} is not JSON: {error}") from error
            if not isinstance(entry, dict) or not isinstance(entry.get("sample"), str):
                raise InputDataError(path, f"line {number} has no 'sample' name")
            entries.append(entry)
    return entries


def href(target: Path, page_folder: Path) -> str:
    """A relative, URL-quoted link from a page in ``page_folder`` to ``target``."""
    relative = os.path.relpath(Path(target), Path(page_folder))
    return quote(Path(relative).as_posix(), safe="/")


def link(target: Path, page_folder: Path, label: str | None = None) -> dict | None:
    """``{"label", "href", "kind"}`` for an existing file, ``None`` when the file does not exist."""
    target = Path(target)
    if not target.is_file():
        return None
    return {"label": label or target.name, "href": href(target, page_folder), "kind": target.suffix.lstrip(".")}


def links(targets: Iterable[Path], page_folder: Path) -> list[dict]:
    """Links to those of ``targets`` that exist, in order, without repeats."""
    out, seen = [], set()
    for target in targets:
        item = link(target, page_folder)
        if item is not None and item["href"] not in seen:
            seen.add(item["href"])
            out.append(item)
    return out


def thumbnail(figure: Path, page_folder: Path, width: int) -> dict | None:
    """``{"href", "width", "height"}`` of a small JPEG of ``figure`` in ``<page>/thumbs/``.

    The thumbnail is made with Pillow once and remade only when the figure is newer. A figure
    Pillow cannot read gets no thumbnail (logged), so one damaged PNG never stops the page.
    """
    from PIL import Image, UnidentifiedImageError

    figure = Path(figure)
    if not figure.is_file():
        return None
    target = Path(page_folder) / THUMBS_DIR / f"{figure.stem}.jpg"
    try:
        if not target.is_file() or target.stat().st_mtime < figure.stat().st_mtime:
            with Image.open(figure) as image:
                image.thumbnail((width, width * 4), Image.Resampling.LANCZOS)
                rgb = _flatten(image)
                with atomic_path(target) as tmp:
                    rgb.save(tmp, format="JPEG", quality=82, optimize=True)
        with Image.open(target) as made:
            size = made.size
    except (OSError, UnidentifiedImageError, ValueError) as error:
        log.warning("%s: no thumbnail for the HTML report (%s)", figure, error)
        return None
    return {"href": href(target, page_folder), "width": size[0], "height": size[1]}


def _flatten(image: Any) -> Any:
    """An RGB copy of ``image`` with any transparency composited on white."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "P"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")
