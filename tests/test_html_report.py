"""The HTML report pages built from synthetic run folders: content, escaping, links, thumbnails, bad input."""

from __future__ import annotations

import json
import os
import re
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from markupsafe import escape as markupsafe_escape
from omegaconf import OmegaConf

from benchmarks.html_page import synthetic_dataset
from core.errors import ConfigError, InputDataError
from xai.html import (
    HtmlOptions,
    html_options,
    write_comparison_page,
    write_dataset_page,
    write_model_page,
    write_report_page,
)

ROOT = Path(__file__).resolve().parents[1]
NASTY = "Large_<i>A&B\"x'"
BANDS = {"ULF": 0.5, "Pc5": 0.3, "Pc4": 0.2, "Pc3": 0.1, "rest": 0.05}


def _png(path: Path, size=(400, 200)) -> Path:
    from PIL import Image

    Image.new("RGBA", size, (30, 120, 200, 255)).save(path)
    return path


def _summary(scale: float = 1.0) -> dict:
    return {
        "empty": False,
        "bands": {
            k: {
                "covered": True,
                "mass_share": v * scale,
                "area_share": 0.2,
                "enrichment": v * scale / 0.2,
                "frequency_range_hz": [0.001, 0.01],
            }
            for k, v in BANDS.items()
        },
        "concentration": {"normalized_entropy": 0.9, "top_mass_share": 0.2},
        "centroid": {"frequency_hz": 0.004, "hours_before": 2.0},
        "peak": {"frequency_hz": 0.003, "hours_before": 1.0},
    }


def _head(prediction: str, true: str, confidence: float) -> dict:
    return {
        "prediction": prediction,
        "confidence": confidence,
        "probabilities": {prediction: confidence},
        "explained_class": prediction,
        "true": true,
        "correct": prediction == true,
        "attention": {"gradcam": _summary(), "saliency": _summary(0.5)},
    }


def explain_folder(folder: Path, names=(NASTY, "Medium_B_2020-01-01")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for i, name in enumerate(names):
        files = {"figure": f"{name}_visualization.png", "heatmaps": f"{name}_heatmaps.npz"}
        _png(folder / files["figure"])
        (folder / files["heatmaps"]).write_bytes(b"npz")
        true = {"magnitude": name.split("_")[0], "azimuth": "N"}
        samples.append(
            {
                "sample": name,
                "source": "x.npy",
                "split": "test",
                "true": true,
                "files": files,
                "heads": {
                    "magnitude": _head("Large", true["magnitude"], 0.6 + i / 10),
                    "azimuth": _head("S", "N", 0.3),
                },
            }
        )
    results = {
        "model": "vgg16",
        "model_file": "m.keras",
        "target_layer": "block5_conv3",
        "input_shape": [32, 32, 3],
        "methods": ["gradcam", "saliency"],
        "heads": ["magnitude", "azimuth"],
        "score": {"magnitude": "logit", "azimuth": "logit"},
        "environment": {"device": "CPU", "keras": "3"},
        "axes": {"row_frequency_hz": [0.0005, 0.1], "column_time_s": [21000, 100], "layout": "channels"},
        "data": {"kind": "demo"},
        "samples": samples,
        "status": "ok",
    }
    (folder / "visualization_results.json").write_text(json.dumps(results), encoding="utf-8")
    return folder


def comparison_folder(sweep: Path) -> Path:
    """A sweep with two explained models and its comparison.json (2 samples agree on a wrong class)."""
    samples = ["Large_A_2019-01-01", "Medium_B_2019-01-02", "Moderate_C_2019-01-03"]
    preds = {"vgg16": ["Moderate", "Moderate", "Moderate"], "efficientnet": ["Moderate", "Moderate", "Large"]}
    truth = ["Large", "Medium", "Moderate"]
    for job, model in enumerate(preds):
        folder = sweep / str(job) / model
        explain_folder(folder, samples)
        data = json.loads((folder / "visualization_results.json").read_text())
        data["model"] = model
        (folder / "visualization_results.json").write_text(json.dumps(data))
    out = sweep / "comparison"
    out.mkdir()
    for name in samples:
        _png(out / f"{name}_comparison.png")
    _png(out / "paper_gradcam_magnitude.png")
    (out / "paper_gradcam_magnitude.pdf").write_bytes(b"%PDF-1.4")
    magnitude = {
        s: {
            "true": t,
            "models": {
                m: {"prediction": p[i], "confidence": 0.5, "correct": p[i] == t, "explained_class": p[i]}
                for m, p in preds.items()
            },
        }
        for i, (s, t) in enumerate(zip(samples, truth))
    }
    comparison = {
        "folders": [sweep.as_posix()],
        "samples": samples,
        "heads": ["magnitude"],
        "figure_method": "gradcam",
        "models": {
            m: {
                "results_files": [f"{sweep.name}/{j}/{m}/visualization_results.json"],
                "methods": ["gradcam"],
                "samples": samples,
                "target_layer": "x",
                "input_shape": [32, 32, 3],
            }
            for j, m in enumerate(preds)
        },
        "predictions": {"magnitude": magnitude},
        "accuracy": {"magnitude": {m: {"correct": 1, "n": 3, "accuracy": 1 / 3, "unknown_truth": 0} for m in preds}},
        "confidence": {"magnitude": {m: {"mean": 0.5, "std": 0.0, "n": 3} for m in preds}},
        "agreement": {
            "magnitude": {
                "pairs": [
                    {
                        "models": ["efficientnet", "vgg16"],
                        "n": 3,
                        "agree": 2,
                        "rate": 2 / 3,
                        "agree_wrong": 2,
                        "agree_wrong_samples": samples[:2],
                    }
                ],
                "all_models": {
                    "models": ["efficientnet", "vgg16"],
                    "n_common": 3,
                    "agree": 2,
                    "agree_samples": samples[:2],
                    "rate": 2 / 3,
                    "agree_wrong": 2,
                    "agree_wrong_samples": [
                        {"sample": s, "prediction": "Moderate", "true": t} for s, t in zip(samples[:2], truth)
                    ],
                },
            }
        },
        "attention": {
            m: {
                "magnitude": {
                    "gradcam": {
                        "per_sample": {s: _summary() for s in samples},
                        "summary": {"n": 3, "bands": {}, "normalized_entropy": {"mean": 0.9}},
                    }
                }
            }
            for m in preds
        },
        "similarity": {
            "magnitude": {
                "gradcam": {
                    "efficientnet vs vgg16": {
                        "models": ["efficientnet", "vgg16"],
                        "spearman": {"mean": 0.5, "n": 3},
                        "top_iou": {"mean": 0.3, "n": 3},
                        "per_sample": {
                            s: {"spearman": 0.5, "top_iou": 0.3, "same_explained_class": True} for s in samples
                        },
                    }
                }
            }
        },
        "jobs": {
            "failed": [{"job": "h/2", "file": "h/2/status.json", "model": "x", "error": "boom <b>"}],
            "missing": [],
            "unreadable": [],
            "duplicates": [],
        },
        "rules": {"enrichment_concentrates": 1.5, "enrichment_depleted": 0.666667, "top_iou_chance": 0.052632},
        "figures": [f"{s}_comparison.png" for s in samples]
        + ["paper_gradcam_magnitude.pdf", "paper_gradcam_magnitude.png"],
        "notes": [],
        "problems": [],
        "trust": {},
    }
    (out / "comparison.json").write_text(json.dumps(comparison), encoding="utf-8")
    (out / "GRADCAM_COMPARISON_REPORT.md").write_text("# report\n")
    return out


def embedded(page: Path) -> dict:
    """The explorer's JSON block of a page."""
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page.read_text(), re.S)
    assert match, "no embedded data block"
    return json.loads(match.group(1))


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        self.refs += [attrs[k] for k in ("href", "src") if attrs.get(k)]


def page_references(page: Path) -> list[str]:
    """Every href/src of the page's markup and of its embedded rows (figures, thumbnails, files)."""
    parser = _Refs()
    parser.feed(page.read_text())
    refs = [r for r in parser.refs if not r.startswith("#")]
    match = re.search(r'id="report-data"', page.read_text())
    if match:
        for row in embedded(page)["rows"]:
            refs += [x for x in (row.get("fig"), (row.get("thumb") or {}).get("href")) if x]
            refs += [item["href"] for item in row.get("links") or []]
    return refs


def assert_links_resolve(page: Path) -> None:
    refs = page_references(page)
    assert refs
    for ref in refs:
        assert not re.match(r"^[a-z]+:", ref), f"absolute or remote reference {ref}"
        assert (page.parent / unquote(ref)).is_file(), f"{ref} does not resolve to a file"


def test_model_page_escapes_names_embeds_rows_and_links_existing_files(tmp_path):
    folder = explain_folder(tmp_path / "run" / "vgg16")
    page = write_model_page(folder)
    html = page.read_text()
    assert page == folder / "report.html"
    assert "<i>A&B" not in html and "&lt;i&gt;A&amp;B" in html
    data = embedded(page)
    assert data["kind"] == "model" and data["models"] == ["vgg16"] and data["heads"] == ["magnitude", "azimuth"]
    rows = {r["s"]: r for r in data["rows"]}
    assert set(rows) == {NASTY, "Medium_B_2020-01-01"}
    nasty = rows[NASTY]
    assert nasty["m"]["vgg16"]["magnitude"] == {
        "p": "Large",
        "c": 0.6,
        "ok": True,
        "t": "Large",
        "b": [0.5, 0.3, 0.2, 0.1, 0.05],
    }
    assert nasty["m"]["vgg16"]["azimuth"]["ok"] is False
    assert nasty["alt"].startswith(NASTY) and "wrong" in nasty["alt"] and "correct" in nasty["alt"]
    assert nasty["thumb"]["width"] == 360 and nasty["thumb"]["height"] == 180
    assert data["classes"] == {"magnitude": ["Large", "Medium"], "azimuth": ["N"]}
    assert_links_resolve(page)
    assert "Grad-CAM" in html and "Band attention" in html


def test_pages_are_self_contained(tmp_path):
    page = write_model_page(explain_folder(tmp_path / "vgg16"))
    parser = _Refs()
    parser.feed(page.read_text())
    for tag, attrs in parser.tags:
        assert not (tag == "script" and attrs.get("src")), "external script"
        assert tag != "link", "external stylesheet"
    assert "http://" not in page.read_text() and "https://" not in page.read_text()
    for tag, attrs in parser.tags:
        if tag == "img" and attrs.get("src"):  # the card and dialog images get their alt text with their src
            assert attrs.get("alt"), f"image without alt text: {attrs}"
        if tag in ("select", "input"):
            assert any(t == "label" and a.get("for") == attrs["id"] for t, a in parser.tags), f"no label for {attrs}"


def test_thumbnails_are_made_once_and_remade_for_a_newer_figure(tmp_path):
    folder = explain_folder(tmp_path / "vgg16")
    write_model_page(folder)
    thumb = folder / "thumbs" / "Medium_B_2020-01-01_visualization.jpg"
    first = thumb.stat().st_mtime_ns
    write_model_page(folder)
    assert thumb.stat().st_mtime_ns == first
    figure = folder / "Medium_B_2020-01-01_visualization.png"
    _png(figure, (800, 100))
    later = time.time() + 5
    os.utime(figure, (later, later))
    write_model_page(folder)
    assert thumb.stat().st_mtime_ns != first
    from PIL import Image

    assert Image.open(thumb).size == (360, 45)


def test_a_damaged_figure_gets_no_thumbnail_but_the_page_is_written(tmp_path, caplog):
    folder = explain_folder(tmp_path / "vgg16")
    (folder / "Medium_B_2020-01-01_visualization.png").write_bytes(b"not a png")
    page = write_model_page(folder)
    rows = {r["s"]: r for r in embedded(page)["rows"]}
    assert rows["Medium_B_2020-01-01"]["thumb"] is None and rows[NASTY]["thumb"]
    assert "no thumbnail" in caplog.text


def test_failed_job_gets_a_status_page(tmp_path):
    folder = tmp_path / "vgg16"
    folder.mkdir()
    (folder / "status.json").write_text(
        json.dumps({"status": "failed", "error": "model.file: <missing>", "error_type": "ModelError", "model": "vgg16"})
    )
    page = write_model_page(folder)
    html = page.read_text()
    assert "This job failed" in html and "model.file: &lt;missing&gt;" in html
    assert 'id="report-data"' not in html


@pytest.mark.parametrize(
    ("writer", "setup", "words"),
    [
        (write_model_page, lambda f: None, "visualization_results.json: file not found"),
        (write_model_page, lambda f: (f / "visualization_results.json").write_text("{oops"), "cannot read JSON"),
        (write_model_page, lambda f: (f / "visualization_results.json").write_text("[]"), "is not a JSON object"),
        (
            write_model_page,
            lambda f: (f / "visualization_results.json").write_text('{"samples": [1]}'),
            "'samples' list",
        ),
        (write_dataset_page, lambda f: (f / "dataset_results.json").write_text("{}"), "samples.jsonl: file not found"),
        (
            write_dataset_page,
            lambda f: (
                (f / "dataset_results.json").write_text("{}"),
                (f / "samples.jsonl").write_text('{"sample": "a"}\n{bad\n'),
            ),
            "line 2 is not JSON",
        ),
        (write_comparison_page, lambda f: (f / "comparison.json").write_text('{"samples": []}'), "no 'heads' entry"),
    ],
)
def test_bad_input_is_one_line_naming_the_file(tmp_path, writer, setup, words):
    folder = tmp_path / "m"
    folder.mkdir()
    setup(folder)
    with pytest.raises(InputDataError) as info:
        writer(folder)
    message = str(info.value)
    assert words in message and str(folder) in message and "\n" not in message
    assert not (folder / "report.html").exists()


def test_dataset_page_lists_every_sample_and_thumbnails_only_the_figures(tmp_path):
    folder = synthetic_dataset(tmp_path / "efficientnet", n_samples=60, n_figures=3)
    page = write_dataset_page(folder)
    data = embedded(page)
    assert data["kind"] == "dataset" and len(data["rows"]) == 60
    assert sum(1 for r in data["rows"] if r["thumb"]) == 3
    journal = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    for row, entry in zip(data["rows"], journal):
        assert row["s"] == entry["sample"]
        assert row["m"]["efficientnet"]["magnitude"]["ok"] == entry["heads"]["magnitude"]["correct"]
    html = page.read_text()
    assert "passes every check" in html and "not trustworthy here (fails random_logit)" in html
    assert "Confusion matrix, magnitude head" in html and "Relevance mass by true class" in html
    assert_links_resolve(page)


def test_dataset_page_shows_the_reliance_agreement_beside_a_verdict(tmp_path):
    folder = synthetic_dataset(tmp_path / "efficientnet", n_samples=6, n_figures=0)
    results = json.loads((folder / "dataset_results.json").read_text())
    detail = "Spearman of attention with occlusion reliance over regions: 0.09 [0.04, 0.16] (needs > 0.3)"
    verdict = results["trust"]["verdicts"]["gradcam"]["magnitude"]
    verdict["reliance"] = {"outcome": "fails", "passed": False, "detail": detail, "against": "occlusion"}
    (folder / "dataset_results.json").write_text(json.dumps(results))
    html = write_dataset_page(folder).read_text()
    items = re.findall(r'<li class="reliance-agreement">(.*?)</li>', html, flags=re.S)
    assert len(items) == 1 and "Occlusion" in items[0] and str(markupsafe_escape(detail)) in items[0]


def test_comparison_page_marks_agreement_and_links_the_models_files(tmp_path):
    sweep = tmp_path / "sweep"
    out = comparison_folder(sweep)
    page = write_comparison_page(out)
    data = embedded(page)
    assert data["models"] == ["vgg16", "efficientnet"] and data["agreement"] is True
    rows = {r["s"]: r for r in data["rows"]}
    assert [s for s, r in rows.items() if r["aw"]["magnitude"]] == ["Large_A_2019-01-01", "Medium_B_2019-01-02"]
    assert rows["Moderate_C_2019-01-03"]["ag"]["magnitude"] is False
    assert rows["Moderate_C_2019-01-03"]["m"]["efficientnet"]["magnitude"]["ok"] is False
    links = [item["href"] for item in rows["Large_A_2019-01-01"]["links"]]
    assert "../0/vgg16/Large_A_2019-01-01_visualization.png" in links
    html = page.read_text()
    assert "boom &lt;b&gt;" in html and "Agreed but wrong (magnitude): 2 sample(s)" in html
    assert "download PDF" in html and "paper_gradcam_magnitude" in html
    assert_links_resolve(page)


def test_comparison_page_finds_a_moved_sweep_through_its_own_parent(tmp_path):
    out = comparison_folder(tmp_path / "sweep")
    moved = tmp_path / "elsewhere"
    (tmp_path / "sweep").rename(moved)
    page = write_comparison_page(moved / "comparison")
    rows = embedded(page)["rows"]
    assert rows[0]["links"] and out.name == "comparison"
    assert_links_resolve(page)


def test_html_options_from_config_and_their_checks():
    assert html_options(None) == HtmlOptions()
    default = OmegaConf.load(ROOT / "conf" / "report" / "default.yaml")
    assert html_options(OmegaConf.create({"report": default})) == HtmlOptions()
    assert html_options(OmegaConf.create({"report": {"html": False, "page_size": 24}})) == HtmlOptions(False, 360, 24)
    with pytest.raises(ConfigError, match="unknown key"):
        html_options(OmegaConf.create({"report": {"htm": True}}))
    with pytest.raises(ConfigError, match="thumbnail_width"):
        HtmlOptions(thumbnail_width=5)


def test_write_report_page_honours_the_switch_and_never_raises_for_a_broken_folder(tmp_path, caplog):
    folder = explain_folder(tmp_path / "vgg16")
    off = OmegaConf.create({"report": {"html": False}})
    assert write_report_page("model", folder, off) is None and not (folder / "report.html").exists()
    assert write_report_page("model", folder, OmegaConf.create({})) == folder / "report.html"
    assert write_report_page("dataset", folder) is None  # no dataset_results.json: logged, not raised
    assert "dataset_results.json: file not found" in caplog.text
    with pytest.raises(ConfigError, match="page kind"):
        write_report_page("nonsense", folder)
    with pytest.raises(ConfigError, match="unknown key"):
        write_report_page("model", folder, OmegaConf.create({"report": {"pages": 1}}))


def test_dataset_page_shows_the_confound_rates_and_sentences_of_the_run(tmp_path):
    from tests.test_confound import CLASSES, FAST, _storm_rows
    from xai.trust.confound import confound_test

    folder = synthetic_dataset(tmp_path / "efficientnet", n_samples=12, n_figures=1)
    results = json.loads((folder / "dataset_results.json").read_text())
    results["confound"] = confound_test(_storm_rows(), CLASSES, FAST)
    (folder / "dataset_results.json").write_text(json.dumps(results))
    html = write_dataset_page(folder).read_text()
    assert 'id="confound-rates"' in html
    assert "100 % (6/6)" in html and "58 % (7/12)" in html and "17 % (1/6)" in html  # disturbed / quiet / quiet Normal
    for sentence in results["confound"]["sentences"]:
        assert str(markupsafe_escape(sentence)) in html
    results["confound"] = {"measured": False, "reason": "no window carries geomagnetic activity"}
    (folder / "dataset_results.json").write_text(json.dumps(results))
    html = write_dataset_page(folder).read_text()
    assert "Not measured: no window carries geomagnetic activity." in html and 'id="confound-rates"' not in html
