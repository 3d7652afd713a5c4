"""The HTML report pages in headless Chromium (system chromium + chromedriver through Selenium):
no console errors, every image loads, every link resolves, and the filters show exactly the samples
the JSON files count as wrong / agreed-but-wrong. The slow tests use pages of real tiny runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from benchmarks.html_page import synthetic_dataset
from tests.conftest import FEW_SMOOTHGRAD_SAMPLES, TINY, run_main
from tests.test_html_report import comparison_folder
from xai.html import write_comparison_page, write_dataset_page

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (requirements-test.txt)")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

ALL_IMAGES_COMPLETE = "return Array.from(document.images).filter(i => i.getAttribute('src')).every(i => i.complete);"


@pytest.fixture(scope="module")
def browser():
    if not (shutil.which("chromium") or shutil.which("chromium-browser")) or not shutil.which("chromedriver"):
        pytest.skip("no chromium/chromedriver found (install: apt-get install -y chromium chromium-driver)")
    from benchmarks.html_page import chromium_driver

    driver = chromium_driver()
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


class Page:
    """A report page open in the browser, driven as a user would (selects, buttons, keys)."""

    def __init__(self, driver, path: Path) -> None:
        self.driver, self.path = driver, Path(path)
        driver.get_log("browser")  # drop earlier pages' messages
        driver.get(self.path.resolve().as_uri())
        WebDriverWait(driver, 10).until(lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("data-ready-ms"))

    def choose(self, control: str, value: str) -> None:
        Select(self.driver.find_element(By.ID, control)).select_by_value(value)

    def filter(self, model: str = "", head: str = "", status: str = "", cls: str = "") -> list[str]:
        """The samples shown for a filter, all on one page."""
        for control, value in (
            ("f-model", model),
            ("f-head", head),
            ("f-class", cls),
            ("f-status", status),
            ("f-size", "all"),
        ):
            self.choose(control, value)
        view = Select(self.driver.find_element(By.ID, "f-view")).first_selected_option.get_attribute("value")
        selector = "#gallery .card" if view == "gallery" else "#table-body tr"
        shown = [e.get_attribute("data-sample") for e in self.driver.find_elements(By.CSS_SELECTOR, selector)]
        assert int(self.driver.find_element(By.ID, "status").get_attribute("data-count")) == len(shown)
        return sorted(shown)

    def severe(self) -> list[dict]:
        return [e for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"]

    def images(self) -> list[dict]:
        """Every image with a source, after scrolling it into view (thumbnails load lazily)."""
        for image in self.driver.find_elements(By.CSS_SELECTOR, "img[src]"):
            self.driver.execute_script("arguments[0].scrollIntoView();", image)
        WebDriverWait(self.driver, 15).until(lambda d: d.execute_script(ALL_IMAGES_COMPLETE))
        return self.driver.execute_script(
            "return Array.from(document.images).filter(i => i.getAttribute('src'))"
            ".map(i => ({src: i.getAttribute('src'), width: i.naturalWidth, alt: i.alt}));"
        )

    def references(self) -> list[str]:
        return self.driver.execute_script(
            "return Array.from(document.querySelectorAll('a[href], img[src]')).map(e => e.href || e.src);"
        )

    def detail_references(self, limit: int = 50) -> list[str]:
        """Open every sample's detail dialog (table view, Details button) and collect its links and figure."""
        self.choose("f-view", "table")
        self.filter()
        found = []
        buttons = self.driver.find_elements(By.CSS_SELECTOR, "#table-body .details-button")[:limit]
        for button in buttons:
            button.click()
            dialog = self.driver.find_element(By.ID, "detail")
            assert dialog.get_attribute("open") is not None
            found += self.references()
            dialog.send_keys(Keys.ESCAPE)
            WebDriverWait(self.driver, 5).until(lambda d, shown=dialog: shown.get_attribute("open") is None)
        self.choose("f-view", "gallery")
        return found

    def check_clean(self) -> None:
        """No console errors, every image loaded with alt text, every link and image resolves to a file."""
        images = self.images()
        assert images, "the page shows no image"
        assert [i for i in images if i["width"] == 0] == []
        assert [i for i in images if not i["alt"]] == []
        for url in {*self.references(), *self.detail_references()}:
            parsed = urlparse(url)
            assert parsed.scheme == "file", f"non-local reference {url}"
            target = Path(unquote(parsed.path))
            if target == self.path.resolve() and parsed.fragment:
                assert self.driver.find_elements(By.ID, parsed.fragment), f"anchor #{parsed.fragment} is missing"
                continue
            assert target.is_file(), f"{url} does not resolve to a file"
        assert self.severe() == []


def _expected_wrong(comparison: dict, models: list[str], heads: list[str]) -> list[str]:
    predictions = comparison["predictions"]
    return sorted(
        {
            s
            for h in heads
            for s, e in predictions[h].items()
            for m in models
            if (e["models"].get(m) or {}).get("correct") is False
        }
    )


def _check_comparison_filters(page: Page, comparison: dict) -> None:
    models, heads = list(comparison["models"]), comparison["heads"]
    for head in heads:
        for model in models:
            assert page.filter(model, head, "wrong") == _expected_wrong(comparison, [model], [head])
            correct = sorted(
                s
                for s, e in comparison["predictions"][head].items()
                if (e["models"].get(model) or {}).get("correct") is True
            )
            assert page.filter(model, head, "correct") == correct
        listed = comparison["agreement"][head]["all_models"]["agree_wrong_samples"]
        assert page.filter("", head, "agreed-wrong") == sorted(item["sample"] for item in listed)
    assert page.filter("", "", "wrong") == _expected_wrong(comparison, models, heads)
    assert page.filter() == sorted(comparison["samples"])


# ----------------------------------------------------------------------------- synthetic pages (fast)
def test_synthetic_comparison_page_filters_keyboard_and_links(tmp_path, browser):
    out = comparison_folder(tmp_path / "sweep")
    page = Page(browser, write_comparison_page(out))
    comparison = json.loads((out / "comparison.json").read_text())
    _check_comparison_filters(page, comparison)
    assert page.filter("", "magnitude", "agreed-wrong") == ["Large_A_2019-01-01", "Medium_B_2019-01-02"]
    assert page.filter("", "magnitude", "disagree") == ["Moderate_C_2019-01-03"]
    assert page.filter(cls="magnitude|Large") == ["Large_A_2019-01-01"]
    page.filter()
    # keyboard: the first card's picture button opens the dialog with Enter, Escape closes it and focus returns
    first = browser.find_element(By.CSS_SELECTOR, "#gallery .card .thumb-button")
    first.send_keys(Keys.ENTER)
    dialog = browser.find_element(By.ID, "detail")
    WebDriverWait(browser, 5).until(lambda d: dialog.get_attribute("open") is not None)
    assert browser.find_element(By.ID, "detail-title").text == "Large_A_2019-01-01"
    assert "vgg16 figure (PNG)" in browser.find_element(By.ID, "detail-links").text
    dialog.send_keys(Keys.ESCAPE)
    WebDriverWait(browser, 5).until(lambda d: dialog.get_attribute("open") is None)
    assert browser.switch_to.active_element == first
    page.check_clean()
    # printing: controls hidden, every matching sample in the table
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    browser.execute_script("window.dispatchEvent(new Event('beforeprint'));")
    assert not browser.find_element(By.ID, "filters").is_displayed()
    assert len(browser.find_elements(By.CSS_SELECTOR, "#table-body tr")) == 3
    browser.execute_script("window.dispatchEvent(new Event('afterprint'));")
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    assert browser.find_element(By.ID, "filters").is_displayed()


def test_synthetic_dataset_page_pages_sorts_and_filters(tmp_path, browser):
    folder = synthetic_dataset(tmp_path / "efficientnet", n_samples=300, n_figures=4)
    page = Page(browser, write_dataset_page(folder))
    cards = browser.find_elements(By.CSS_SELECTOR, "#gallery .card")
    assert len(cards) == 48 and browser.find_element(By.ID, "page-label").text == "page 1 of 7"
    journal = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    names = sorted(e["sample"] for e in journal)
    assert [c.get_attribute("data-sample") for c in cards] == names[:48]
    browser.find_element(By.ID, "next").click()
    assert browser.find_element(By.CSS_SELECTOR, "#gallery .card").get_attribute("data-sample") == names[48]
    assert browser.find_element(By.ID, "page-label").text == "page 2 of 7"
    for head in ("magnitude", "azimuth"):
        wrong = sorted(e["sample"] for e in journal if e["heads"][head]["correct"] is False)
        assert page.filter("efficientnet", head, "wrong") == wrong
    page.choose("f-sort", "conf-asc")
    page.choose("f-size", "24")
    shown = [e.get_attribute("data-sample") for e in browser.find_elements(By.CSS_SELECTOR, "#gallery .card")]
    confidence = {e["sample"]: round(e["heads"]["azimuth"]["confidence"], 4) for e in journal}  # as embedded
    lowest = sorted(confidence[e["sample"]] for e in journal if e["heads"]["azimuth"]["correct"] is False)[:24]
    assert [confidence[name] for name in shown] == lowest
    assert page.severe() == []


# ----------------------------------------------------------------------------- pages of real tiny runs (slow)
DATASET_FAST = [  # the trust measures once each, on as few samples as gives numbers (about 45 s)
    "task.figures=2",
    "task.faithfulness_samples=2",
    "task.faithfulness_steps=3",
    "task.randomisation_samples=1",
    "task.randomisation_steps=1",
    "task.bootstrap_resamples=100",
]


@pytest.fixture(scope="session")
def real_pages(tmp_path_factory, tiny_cache) -> dict[str, Path]:
    """A tiny two-model sweep, a tiny data-set run and ``task=compare`` over both, with their pages."""
    base = tmp_path_factory.mktemp("html_runs")
    common = [*TINY, FEW_SMOOTHGRAD_SAMPLES, f"paths.cache_dir={tiny_cache}"]
    sweep, dataset, compare = base / "sweep", base / "dataset", base / "compare"
    for args in (
        ["-m", "model=vgg16,efficientnet", *common, f"hydra.sweep.dir={sweep}"],
        ["task=dataset", *common, *DATASET_FAST, f"hydra.run.dir={dataset}"],
        ["task=compare", f"task.folders=[{sweep},{dataset}]", f"hydra.run.dir={compare}"],
    ):
        proc = run_main(args)
        assert proc.returncode == 0, proc.stderr[-3000:]
    # the runs write their own pages: each sweep job's model folder, the comparison, the data-set run
    pages = {f"explain-{p.parent.name}": p for p in sorted(sweep.glob("*/*/report.html"))}
    pages["comparison"] = sweep / "comparison" / "report.html"
    pages["dataset"] = dataset / "efficientnet" / "report.html"
    pages["compare-with-trust"] = compare / "comparison" / "report.html"
    assert sorted(pages) == ["compare-with-trust", "comparison", "dataset", "explain-efficientnet", "explain-vgg16"]
    assert all(page.is_file() for page in pages.values()), pages
    return pages


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["explain-vgg16", "explain-efficientnet", "comparison", "dataset", "compare-with-trust"]
)
def test_real_page_opens_cleanly_and_every_image_and_link_resolves(real_pages, browser, name):
    page = Page(browser, real_pages[name])
    page.check_clean()
    assert page.filter() != []
    browser.execute_script("window.scrollTo(0, document.getElementById('samples').offsetTop);")
    browser.save_screenshot(str(real_pages[name].with_name("report_screenshot.png")))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["comparison", "compare-with-trust"])
def test_real_comparison_filters_show_what_comparison_json_counts(real_pages, browser, name):
    comparison = json.loads(real_pages[name].with_name("comparison.json").read_text())
    page = Page(browser, real_pages[name])
    _check_comparison_filters(page, comparison)
    assert page.filter("", "", "wrong") == _expected_wrong(comparison, list(comparison["models"]), comparison["heads"])
    html = real_pages[name].read_text()
    for info in (comparison.get("trust") or {}).values():
        for per_head in info["trust"]["verdicts"].values():
            for item in per_head.values():
                assert item["verdict"] in html


@pytest.mark.slow
def test_real_dataset_filters_show_what_samples_jsonl_holds(real_pages, browser):
    folder = real_pages["dataset"].parent
    journal = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    page = Page(browser, real_pages["dataset"])
    for head in ("magnitude", "azimuth"):
        wrong = sorted(e["sample"] for e in journal if e["heads"][head]["correct"] is False)
        assert page.filter("efficientnet", head, "wrong") == wrong
        for cls in {e["true"][head] for e in journal}:
            assert page.filter(cls=f"{head}|{cls}") == sorted(e["sample"] for e in journal if e["true"][head] == cls)
    results = json.loads((folder / "dataset_results.json").read_text())
    for per_head in results["trust"]["verdicts"].values():
        for item in per_head.values():
            assert item["verdict"] in real_pages["dataset"].read_text()
    assert len(list((folder / "thumbs").glob("*.jpg"))) == 2
