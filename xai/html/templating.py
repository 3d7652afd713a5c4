"""The Jinja2 environment of the report pages: template loading, number filters and inline assets."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from core.jsonvalues import json_value
from core.names import METHOD_TITLES

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _number(value: Any) -> float | None:
    if isinstance(value, (bool, jinja2.Undefined)) or value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def num(value: Any, fmt: str = ".2f") -> str:
    """A number with ``fmt``, or an en dash when it is missing."""
    number = _number(value)
    return "–" if number is None else format(number, fmt)


def pct(value: Any, digits: int = 0) -> str:
    """A share in per cent (``0.25`` -> ``25 %``), or ``n/a``."""
    number = _number(value)
    return "n/a" if number is None else f"{100 * number:.{digits}f} %"


def ci(value: Any, fmt: str = ".2f") -> str:
    """A bootstrap summary ``{mean, low, high}`` as ``mean [low, high]``."""
    if not isinstance(value, Mapping) or _number(value.get("mean")) is None:
        return "–"
    low, high = _number(value.get("low")), _number(value.get("high"))
    if low is None or high is None:
        return format(float(value["mean"]), fmt)
    return f"{float(value['mean']):{fmt}} [{low:{fmt}}, {high:{fmt}}]"


def method_title(method: Any) -> str:
    """The display name of an explanation method (``gradcam`` -> ``Grad-CAM``)."""
    return METHOD_TITLES.get(str(method), str(method))


def mark(correct: Any) -> str:
    """``correct`` / ``wrong`` / ``unknown`` for a prediction's correctness flag."""
    return "unknown" if correct is None else ("correct" if correct else "wrong")


def _json_script(value: Any) -> Markup:
    """JSON for a ``<script type="application/json">`` block (``<``, ``>``, ``&`` escaped)."""
    return jinja2.utils.htmlsafe_json_dumps(json_value(value), dumps=None, separators=(",", ":"))


@functools.lru_cache(maxsize=8)
def _asset_text(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def asset(name: str) -> Markup:
    """An inline asset (the page's CSS or JavaScript) from the templates folder, unescaped."""
    return Markup(_asset_text(name))


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The one Jinja2 environment: autoescaping on; a missing key renders empty (an older JSON still gives a page)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    from xai.html.sections import band_claim, spearman_label

    env.filters.update(
        num=num,
        pct=pct,
        ci=ci,
        method_title=method_title,
        mark=mark,
        json_script=_json_script,
        band_claim=band_claim,
        spearman_label=spearman_label,
    )
    env.globals.update(asset=asset)
    return env


def render(template: str, **context: Any) -> str:
    """Render ``templates/<template>`` with ``context``."""
    return environment().get_template(template).render(**context)
