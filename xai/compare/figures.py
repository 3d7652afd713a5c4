"""The comparison figures (per-sample overlays, confidence chart, paper grids), drawn through :mod:`xai.render`."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import PrecursorError
from xai.compare.aggregate import Plan
from xai.compare.load import display_map

log = logging.getLogger(__name__)


def safe_name(name: str) -> str:
    """A file-name-safe version of a sample name (no folders, no odd characters)."""
    cleaned = re.sub(r"[^-\w.]+", "_", str(name)).strip("._")
    return cleaned or "sample"


@dataclass
class FigureBook:
    """Draws the figures into ``out``; remembers the files written and the figures that failed.

    A failed figure is logged and listed in ``errors`` (for the report only, so ``comparison.json``
    stays deterministic); it never stops the comparison.
    """

    out: Path
    plan: Plan
    written: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cells: dict[str, dict] = field(init=False)  # head -> (sample, model) -> paper-grid cell

    def __post_init__(self) -> None:
        self.cells = {h: {} for h in self.plan.heads}

    def draw(self, path: Path, function: str, **kwargs: Any) -> None:
        """Call ``xai.render.<function>(path, **kwargs)`` and record what it wrote."""
        try:
            from xai import render

            written = getattr(render, function)(path, **kwargs)
        except Exception as error:  # noqa: BLE001 - figures are secondary to the numbers
            log.error("figure %s failed: %s", path.name, error, exc_info=not isinstance(error, PrecursorError))
            self.errors.append(f"{path.name}: {error}")
            return
        for item in written if isinstance(written, (list, tuple)) else [written]:
            self.written.append(Path(item).name)

    def add_sample(self, sample: str, loaded: Mapping[str, tuple], predictions: Mapping) -> None:
        """Draw ``<sample>_comparison.png`` (the models' overlays side by side) and keep the sample's
        cells for the paper grids; ``loaded`` is ``{model: (record, Loaded)}``."""
        method = self.plan.figure_method
        entries = []
        for model, (record, item) in loaded.items():
            if item.axes is None or "input" not in item.arrays:
                continue
            entry_heads = {}
            for head in self.plan.heads:
                info = record.entry["heads"].get(head)
                heat = display_map(item.arrays, method, head)
                if not isinstance(info, dict) or heat is None:
                    continue
                pred = predictions.get(head, {}).get(sample, {}).get("models", {}).get(model)
                if not pred or pred.get("prediction") is None:
                    continue  # a head without a prediction has nothing to draw
                cell = {
                    "prediction": pred["prediction"],
                    "confidence": pred["confidence"],
                    "true": predictions[head][sample]["true"],
                    "correct": pred["correct"],
                    "map": heat,
                }
                entry_heads[head] = cell
                self.cells[head][(sample, model)] = dict(cell, axes=item.axes, grid_image=item.arrays["input"])
            if entry_heads:
                entries.append(
                    {"model": model, "axes": item.axes, "grid_image": item.arrays["input"], "heads": entry_heads}
                )
        if entries:
            self.draw(
                self.out / f"{safe_name(sample)}_comparison.png",
                "render_comparison_figure",
                sample=sample,
                entries=entries,
                head_order=tuple(self.plan.heads),
                method=method,
            )

    def add_summary(self, comparison: Mapping) -> None:
        """The confidence chart (screen and paper versions) and one paper grid per head."""
        models, samples, heads = self.plan.models, self.plan.samples, self.plan.heads
        if not models or not samples or not heads:
            return
        chart = {
            "samples": samples,
            "models": models,
            "heads": heads,
            "confidence": _per_model(comparison["predictions"], models, heads, "confidence"),
            "correct": _per_model(comparison["predictions"], models, heads, "correct"),
        }
        self.draw(self.out / "confidence_comparison.png", "render_confidence_chart", paper=False, **chart)
        self.draw(self.out / "paper_confidence_comparison", "render_confidence_chart", paper=True, **chart)
        method = self.plan.figure_method
        for head in heads:
            cells = self.cells[head]
            if not cells:
                continue
            self.draw(
                self.out / f"paper_{method}_{head}",
                "render_paper_grid",
                samples=[s for s in samples if any((s, m) in cells for m in models)],
                models=models,
                cells=cells,
                head=head,
                method=method,
            )


def _per_model(predictions: Mapping, models: list[str], heads: list[str], key: str) -> dict:
    """``{head: {model: {sample: value}}}`` of one prediction field (None where the model has no result)."""
    return {
        h: {m: {s: v["models"].get(m, {}).get(key) for s, v in predictions[h].items()} for m in models} for h in heads
    }
