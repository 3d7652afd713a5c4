"""The sample explorer's data: one row per sample (predictions per model and head, band shares,
thumbnail, the numbers shown when a sample is opened), embedded in the page as JSON."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.jsonvalues import json_value
from xai.attention import BANDS, REST
from xai.html.files import link, thumbnail
from xai.html.templating import mark, method_title

BAND_NAMES = (*(band.name for band in BANDS), REST)
DECIMALS = 4
COLUMNS = {
    "probs": ["class", "probability"],
    "preds": ["model", "prediction", "confidence", "explained class", "verdict"],
    "bands": ["method", *BAND_NAMES],
    "enrichment": ["method", *BAND_NAMES],
    "focus": [
        "method",
        "entropy",
        "top-10 % mass",
        "centroid (mHz)",
        "centroid (h before)",
        "peak (mHz)",
        "peak (h before)",
    ],
    "loc": ["map", "relevance mass", "rank accuracy", "pointing game"],
    "faith": ["map", "deletion AUC", "insertion AUC"],
    "sim": ["models", "Spearman ρ", "top-10 % IoU"],
}


@dataclass
class Explorer:
    """Everything the page's filter, gallery, table and detail view need."""

    kind: str
    models: list[str]
    heads: list[str]
    band_method: str | None
    rows: list[dict] = field(default_factory=list)
    page_size: int = 48

    def classes(self) -> dict[str, list[str]]:
        """The true classes present per head, sorted (the class filter's choices)."""
        return {h: sorted({str(r["true"][h]) for r in self.rows if r["true"].get(h) is not None}) for h in self.heads}

    def payload(self) -> dict:
        """The JSON embedded in the page (floats rounded to 4 decimals)."""
        return json_value(
            {
                "kind": self.kind,
                "models": self.models,
                "heads": self.heads,
                "classes": self.classes(),
                "bands": list(BAND_NAMES),
                "band_method": method_title(self.band_method) if self.band_method else None,
                "agreement": len(self.models) >= 2,
                "page_size": self.page_size,
                "columns": COLUMNS,
                "rows": self.rows,
            },
            DECIMALS,
        )


def preferred_method(methods: Sequence[str]) -> str | None:
    """The method whose band shares the cards show: Grad-CAM when present, else the first."""
    methods = [str(m) for m in methods]
    return "gradcam" if "gradcam" in methods else (methods[0] if methods else None)


def _share(value: Any) -> Any:
    return value.get("mass_share") if isinstance(value, Mapping) else value


def band_vector(bands: Any) -> list | None:
    """``[ULF, Pc5, Pc4, Pc3, rest]`` mass shares from an attention summary's or a journal's bands."""
    if not isinstance(bands, Mapping):
        return None
    values = [_share(bands.get(name)) for name in BAND_NAMES]
    return None if all(v is None for v in values) else values


def _enrichment(bands: Any) -> list:
    bands = bands if isinstance(bands, Mapping) else {}
    return [(bands.get(n) or {}).get("enrichment") if isinstance(bands.get(n), Mapping) else None for n in BAND_NAMES]


def attention_tables(head: str, summaries: Mapping[str, Any]) -> list[list]:
    """Mass share, enrichment and focus tables of one head's attention summaries (one row per label)."""
    shares, enrich, focus = [], [], []
    for title, summary in summaries.items():
        if not isinstance(summary, Mapping):
            continue
        shares.append([title, *(band_vector(summary.get("bands")) or [None] * len(BAND_NAMES))])
        enrich.append([title, *_enrichment(summary.get("bands"))])
        conc = summary.get("concentration") or {}
        centroid, peak = summary.get("centroid") or {}, summary.get("peak") or {}
        focus.append(
            [
                title,
                conc.get("normalized_entropy"),
                conc.get("top_mass_share"),
                _mhz(centroid.get("frequency_hz")),
                centroid.get("hours_before"),
                _mhz(peak.get("frequency_hz")),
                peak.get("hours_before"),
            ]
        )
    return [
        [f"{head}: band mass share", "bands", shares],
        [f"{head}: enrichment (share ÷ area)", "enrichment", enrich],
        [f"{head}: concentration and location", "focus", focus],
    ]


def _mhz(value: Any) -> float | None:
    return None if value is None else float(value) * 1e3


def alt_text(sample: str, per_model: Mapping, agreed_wrong: Mapping | None = None) -> str:
    """Alt text of a sample's picture: its name and the verdict of every prediction."""
    parts = []
    for model, heads in per_model.items():
        for head, cell in heads.items():
            true = "unknown" if cell.get("t") is None else cell["t"]
            parts.append(f"{model} {head} {cell.get('p')} (true {true}, {mark(cell.get('ok'))})")
    wrong = [h for h, flag in (agreed_wrong or {}).items() if flag]
    if wrong:
        parts.append("models agree on a wrong class for " + " and ".join(wrong))
    return f"{sample}: " + "; ".join(parts) if parts else sample


def cell(prediction: Any, confidence: Any, correct: Any, true: Any, bands: Any) -> dict:
    """One model's prediction for one head, as the explorer reads it."""
    return {"p": prediction, "c": confidence, "ok": correct, "t": true, "b": band_vector(bands)}


def figure_fields(figure: Path | None, folder: Path, width: int) -> dict:
    """``fig`` (full figure link) and ``thumb`` (generated thumbnail) of a row."""
    full = link(figure, folder) if figure is not None else None
    thumb = thumbnail(figure, folder, width) if full is not None else None
    return {"fig": full["href"] if full else None, "thumb": thumb}


def explain_rows(results: Mapping, folder: Path, width: int) -> list[dict]:
    """Rows of an explain run's model folder (``visualization_results.json``)."""
    model = str(results.get("model") or Path(folder).name)
    method = preferred_method(results.get("methods") or [])
    rows = []
    for entry in results.get("samples") or []:
        files = entry.get("files") or {}
        heads = {h: v for h, v in (entry.get("heads") or {}).items() if isinstance(v, Mapping)}
        per_head = {
            h: cell(
                v.get("prediction"),
                v.get("confidence"),
                v.get("correct"),
                v.get("true"),
                ((v.get("attention") or {}).get(method) or {}).get("bands"),
            )
            for h, v in heads.items()
        }
        tables = []
        for head, info in heads.items():
            probs = info.get("probabilities") or {}
            tables.append([f"{head}: class probabilities", "probs", [[k, p] for k, p in probs.items()]])
            attention = info.get("attention") or {}
            tables += attention_tables(head, {method_title(m): s for m, s in attention.items()})
        meta = [["split", entry.get("split")], ["event time", entry.get("event_time")], ["source", entry.get("source")]]
        meta += [[f"{h}: explained class", v.get("explained_class")] for h, v in heads.items()]
        row = {
            "s": entry["sample"],
            "true": dict(entry.get("true") or {}),
            "m": {model: per_head},
            "ag": {},
            "aw": {},
            "meta": meta,
            "tables": tables,
            "links": [
                x
                for x in (
                    link(folder / str(files[k]), folder, label)
                    for k, label in (("figure", "figure (PNG)"), ("heatmaps", "heatmaps (NPZ)"))
                    if files.get(k)
                )
                if x
            ],
            **figure_fields(folder / str(files["figure"]) if files.get("figure") else None, folder, width),
        }
        row["alt"] = alt_text(row["s"], row["m"])
        rows.append(row)
    return rows


def dataset_rows(journal: Sequence[Mapping], folder: Path, model: str, method: str | None, width: int) -> list[dict]:
    """Rows of a data-set run (``samples.jsonl``); samples with a figure (``task.figures``) get a thumbnail."""
    figures = Path(folder) / "figures"
    have = {p.name for p in figures.glob("*_visualization.png")} if figures.is_dir() else set()
    rows = []
    for entry in journal:
        name = entry["sample"]
        heads = {h: v for h, v in (entry.get("heads") or {}).items() if isinstance(v, Mapping)}
        per_head = {
            h: cell(
                v.get("prediction"),
                v.get("confidence"),
                v.get("correct"),
                v.get("true"),
                (v.get("bands") or {}).get(method),
            )
            for h, v in heads.items()
        }
        figure = figures / f"{name}_visualization.png" if f"{name}_visualization.png" in have else None
        row = {
            "s": name,
            "true": {h: v.get("true") for h, v in heads.items()},
            "m": {model: per_head},
            "ag": {},
            "aw": {},
            "links": [],
            "tables": _dataset_tables(heads),
            "meta": [
                ["index", entry.get("index")],
                ["split", entry.get("split")],
                *([f"{h}: explained class", v.get("explained_class")] for h, v in heads.items()),
                *(
                    [f"{h}: mask area share", v.get("mask_area_share")]
                    for h, v in heads.items()
                    if v.get("mask_area_share") is not None
                ),
            ],
            **(figure_fields(figure, folder, width) if figure else {"fig": None, "thumb": None}),
        }
        row["alt"] = alt_text(name, row["m"])
        rows.append(row)
    return rows


def _dataset_tables(heads: Mapping[str, Mapping]) -> list[list]:
    tables = []
    for head, info in heads.items():
        bands = info.get("bands") or {}
        tables.append(
            [
                f"{head}: band mass share",
                "bands",
                [[method_title(m), *(band_vector(v) or [None] * len(BAND_NAMES))] for m, v in bands.items()],
            ]
        )
        loc = info.get("localisation") or {}
        if loc:
            tables.append(
                [
                    f"{head}: localisation vs. the planted mask",
                    "loc",
                    [
                        [
                            method_title(m),
                            v.get("relevance_mass_accuracy"),
                            v.get("relevance_rank_accuracy"),
                            v.get("pointing_game"),
                        ]
                        for m, v in loc.items()
                        if isinstance(v, Mapping)
                    ],
                ]
            )
        faith = info.get("faithfulness") or {}
        if faith:
            tables.append(
                [
                    f"{head}: deletion / insertion",
                    "faith",
                    [
                        [method_title(m), v.get("deletion_auc"), v.get("insertion_auc")]
                        for m, v in faith.items()
                        if isinstance(v, Mapping)
                    ],
                ]
            )
    return tables
