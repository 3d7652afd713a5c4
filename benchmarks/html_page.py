"""Speed of the HTML report page of a large data-set run, opened and filtered in headless Chromium.

Run ``python -m benchmarks.html_page --samples 5000 --repeats 5 --out outputs/bench/html_page``. It
writes a synthetic data-set run folder (``dataset_results.json``, ``samples.jsonl`` with N samples,
a few per-sample figures), builds its ``report.html`` with :func:`xai.html.write_dataset_page`, then
for every repeat opens the page afresh in headless Chromium (system ``chromium`` + ``chromedriver``,
driven by Selenium) and times:

* ``open_ms``: navigation start until the first page of samples is rendered (``data-ready-ms``,
  set by the page's script; ``load_ms`` is the browser's load event);
* ``filter_ms``: outcome filter "wrong" + sort by confidence, from the change event until the next
  frame has been drawn (the browser's clock; ``filter_wall_ms`` adds the WebDriver round trip);
* ``search_ms``: a sample-name search (``__499``) narrowing the list to 11 samples.

The medians are logged and written as JSON to ``--out``. The goal is open + filter < 2 s.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAGNITUDE = ("Normal", "Moderate", "Medium", "Large")
AZIMUTH = ("Normal", "N", "NE", "E", "SE", "S", "SW", "W", "NW")
METHODS = ("gradcam", "saliency", "smoothgrad")
BANDS = ("ULF", "Pc5", "Pc4", "Pc3", "rest")
HEAD_CLASSES = {"magnitude": MAGNITUDE, "azimuth": AZIMUTH}


def _ci(rng: random.Random, centre: float) -> dict:
    mean = centre + rng.uniform(-0.02, 0.02)
    return {"mean": mean, "low": mean - 0.03, "high": mean + 0.03, "n": 50}


def _head_entry(rng: random.Random, head: str, true: str, index: int) -> dict:
    classes = HEAD_CLASSES[head]
    prediction = true if rng.random() < (0.9 if head == "magnitude" else 0.45) else rng.choice(classes)
    return {
        "prediction": prediction,
        "confidence": rng.uniform(0.2, 0.99),
        "probabilities": [round(rng.random(), 6) for _ in classes],
        "explained_class": prediction,
        "true": true,
        "correct": prediction == true,
        "bands": {m: {b: rng.uniform(0.05, 0.6) for b in BANDS} for m in METHODS},
        "localisation": {
            m: {
                "relevance_mass_accuracy": rng.random(),
                "relevance_rank_accuracy": rng.random(),
                "pointing_game": float(rng.random() > 0.5),
            }
            for m in ("random", *METHODS)
        },
        "faithfulness": (
            {m: {"deletion_auc": rng.random(), "insertion_auc": rng.random()} for m in ("random", *METHODS)}
            if index < 50
            else {}
        ),
        "mask_area_share": 0.11,
    }


def _trust(rng: random.Random) -> dict:
    heads = tuple(HEAD_CLASSES)
    keys = ("relevance_mass_accuracy", "relevance_rank_accuracy", "pointing_game")
    verdicts = {
        m: {
            h: {
                "verdict": "passes every check" if m == "gradcam" else "not trustworthy here (fails random_logit)",
                "checks": {
                    "localisation": {
                        "passed": True,
                        "detail": "relevance mass 0.27 = 2.4× the mask's area share 0.11 (needs ≥ 2×)",
                    },
                    "random_logit": {"passed": m == "gradcam", "detail": "Spearman with another class's map: 0.18"},
                },
            }
            for h in heads
        }
        for m in METHODS
    }
    return {
        "localisation": {
            "measured": True,
            "mask_area_share": {h: _ci(rng, 0.11) for h in heads},
            "random": {h: {k: _ci(rng, 0.1) for k in keys} for h in heads},
            "methods": {m: {h: {k: _ci(rng, 0.25) for k in keys} for h in heads} for m in METHODS},
            "by_class": {
                h: {
                    c: {
                        "n": 100,
                        "mask_area_share": _ci(rng, 0.11),
                        "relevance_mass_accuracy": {m: _ci(rng, 0.2) for m in METHODS},
                    }
                    for c in HEAD_CLASSES[h][1:4]
                }
                for h in heads
            },
        },
        "faithfulness": {
            "measured": True,
            "n": 50,
            "random": {h: {"deletion_auc": _ci(rng, 0.64), "insertion_auc": _ci(rng, 0.63)} for h in heads},
            "methods": {
                m: {
                    h: {
                        "deletion_auc": _ci(rng, 0.4),
                        "insertion_auc": _ci(rng, 0.75),
                        "deletion_gain": _ci(rng, 0.2),
                        "insertion_gain": _ci(rng, 0.1),
                    }
                    for h in heads
                }
                for m in METHODS
            },
        },
        "randomisation": {
            "measured": True,
            "methods": {
                m: {
                    h: {
                        "cascading": [
                            {"label": f"top {i}", "n_layers": i, "mean_spearman": 0.9 / i, "n": 8} for i in (1, 2, 3)
                        ],
                        "final_mean_spearman": 0.3,
                        "random_logit_mean_spearman": 0.2,
                        "n": 8,
                    }
                    for h in heads
                }
                for m in METHODS
            },
        },
        "thresholds": {"mass_vs_area": 2.0, "max_randomised_spearman": 0.5, "max_random_logit_spearman": 0.5},
        "verdicts": verdicts,
    }


def synthetic_dataset(folder: Path, n_samples: int = 5000, n_figures: int = 24, seed: int = 0) -> Path:
    """Write a data-set run's model folder with ``n_samples`` synthetic samples; returns the folder."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    folder = Path(folder)
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    lines = []
    for index in range(n_samples):
        true = {"magnitude": rng.choice(MAGNITUDE), "azimuth": rng.choice(AZIMUTH)}
        date = f"{2016 + index % 8}-{1 + index % 12:02d}-{1 + index % 28:02d}"
        name = f"{true['magnitude']}_S{index % 37:02d}_{date}__{index}"
        entry = {
            "sample": name,
            "index": index,
            "split": "test",
            "true": true,
            "heads": {h: _head_entry(rng, h, true[h], index) for h in HEAD_CLASSES},
        }
        lines.append(json.dumps(entry))
        if index < n_figures:
            image = Image.new("RGB", (1200, 620), (250, 250, 250))
            draw = ImageDraw.Draw(image)
            for k in range(12):
                draw.rectangle([k * 100, 100, k * 100 + 90, 600], fill=(20 * k, 80, 255 - 20 * k))
            draw.text((20, 20), name, fill=(0, 0, 0))
            image.save(folder / "figures" / f"{name}_visualization.png")
    (folder / "samples.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    results = {
        "model": "efficientnet",
        "model_file": "synthetic.keras",
        "n_samples": n_samples,
        "methods": list(METHODS),
        "heads": list(HEAD_CLASSES),
        "explained_class": "predicted",
        "selection": "synthetic benchmark data",
        "confidence": 0.95,
        "data": {"kind": "synthetic"},
        "heads_summary": {
            h: {
                "accuracy": 0.8,
                "n": n_samples,
                "majority_class_rate": 0.4,
                "class_counts": {},
                "confusion": {"classes": list(c), "matrix": [[rng.randrange(50) for _ in c] for _ in c]},
            }
            for h, c in HEAD_CLASSES.items()
        },
        "bands": {
            m: {h: {c: {b: _ci(rng, 0.3) for b in BANDS} for c in classes} for h, classes in HEAD_CLASSES.items()}
            for m in METHODS
        },
        "trust": _trust(rng),
        "class_means": {"figures": []},
        "run": {},
    }
    (folder / "dataset_results.json").write_text(json.dumps(results), encoding="utf-8")
    return folder


def chromium_driver(width: int = 1400, height: int = 1000) -> Any:
    """Headless Chromium through the system ``chromedriver`` (no driver downloads); browser log on."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    driver_path, browser = shutil.which("chromedriver"), shutil.which("chromium") or shutil.which("chromium-browser")
    if not driver_path or not browser:
        raise RuntimeError("chromium and chromedriver are needed: apt-get install -y chromium chromium-driver")
    options = Options()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-extensions",
        "--no-first-run",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=options)


FILTER_SCRIPT = """
var done = arguments[arguments.length - 1];
var t0 = performance.now();
var status = document.getElementById('f-status'), sort = document.getElementById('f-sort');
status.value = 'wrong'; status.dispatchEvent(new Event('change'));
sort.value = 'conf-desc'; sort.dispatchEvent(new Event('change'));
var t1 = performance.now();
requestAnimationFrame(function () { setTimeout(function () {
  done([t1 - t0, performance.now() - t0, document.getElementById('status').getAttribute('data-count')]);
}, 0); });
"""

SEARCH_SCRIPT = """
var done = arguments[arguments.length - 1];
var t0 = performance.now();
var box = document.getElementById('f-search');
document.getElementById('f-status').value = '';
box.value = '__499';
document.getElementById('f-model').dispatchEvent(new Event('change'));
requestAnimationFrame(function () { setTimeout(function () {
  done([performance.now() - t0, document.getElementById('status').getAttribute('data-count')]);
}, 0); });
"""


def measure(page: Path, repeats: int = 5) -> dict:
    """Open ``page`` ``repeats`` times in a fresh tab state and time open, filter and search (ms)."""
    driver = chromium_driver()
    rounds = []
    try:
        driver.set_script_timeout(30)
        for _ in range(repeats):
            driver.get("about:blank")
            started = time.perf_counter()
            driver.get(page.resolve().as_uri())
            open_wall = (time.perf_counter() - started) * 1000
            ready = float(driver.find_element("tag name", "html").get_attribute("data-ready-ms"))
            load = driver.execute_script(
                "var n = performance.getEntriesByType('navigation')[0]; return n ? n.loadEventEnd : null;"
            )
            started = time.perf_counter()
            handler, frame, count = driver.execute_async_script(FILTER_SCRIPT)
            filter_wall = (time.perf_counter() - started) * 1000
            search, found = driver.execute_async_script(SEARCH_SCRIPT)
            errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
            rounds.append(
                {
                    "open_ms": ready,
                    "load_ms": load,
                    "open_wall_ms": open_wall,
                    "filter_handler_ms": handler,
                    "filter_ms": frame,
                    "filter_wall_ms": filter_wall,
                    "search_ms": search,
                    "wrong_count": int(count),
                    "search_count": int(found),
                    "console_errors": len(errors),
                }
            )
    finally:
        driver.quit()
    keys = [k for k in rounds[0] if k.endswith("_ms")]
    summary = {k: statistics.median(r[k] for r in rounds) for k in keys}
    summary["open_plus_filter_ms"] = summary["open_ms"] + summary["filter_ms"]
    return {"median": summary, "rounds": rounds}


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--figures", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="folder for the JSON result (and the page)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from xai.html import write_dataset_page

    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="html_page_"))
    folder = synthetic_dataset(work / "efficientnet", args.samples, args.figures)
    started = time.perf_counter()
    page = write_dataset_page(folder)
    build = (time.perf_counter() - started) * 1000
    result = measure(page, args.repeats)
    result.update(samples=args.samples, build_ms=build, page_bytes=page.stat().st_size, page=str(page))
    (work / "html_page.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    median = result["median"]
    log.info("%d samples, page %.1f MB, built in %.0f ms", args.samples, result["page_bytes"] / 1e6, build)
    log.info(
        "open %.0f ms (load event %.0f ms, wall %.0f ms); filter wrong + sort %.0f ms (wall %.0f ms); "
        "search %.0f ms; open + filter %.0f ms",
        median["open_ms"],
        median["load_ms"],
        median["open_wall_ms"],
        median["filter_ms"],
        median["filter_wall_ms"],
        median["search_ms"],
        median["open_plus_filter_ms"],
    )
    return result


if __name__ == "__main__":
    main()
