"""benchmarks/trust_stability.py on tiny inputs: claims of data-set runs of two seeds, their min–max and
whether each outcome holds on every seed; the real run's cache look-up never trains."""

from __future__ import annotations

from benchmarks.trust_stability import cached_model_dir, claims, markdown, run_seed, stability_rows
from geomag.sources import DemoDataSource
from geomag.spectrogram import SpectrogramConfig
from models.loading import bundle_from_model
from tests.conftest import tiny_model
from xai.dataset import DatasetOptions
from xai.explainers.gradcam import GradCAM
from xai.explainers.saliency import Saliency


def test_claims_of_two_seeds_give_min_max_and_agreement(tmp_path):
    source = DemoDataSource(tmp_path / "cache", {"n_samples": 12}, SpectrogramConfig(grid=(32, 32)))
    mappings = source.class_mappings
    records = source.records()[:8]
    options = DatasetOptions(
        batch_size=8,
        faithfulness_samples=4,
        faithfulness_steps=3,
        randomisation_samples=3,
        randomisation_steps=2,
        bootstrap_resamples=50,
    )
    per_seed, results = {}, {}
    for seed in (0, 1):
        model = tiny_model(len(mappings.magnitude_classes), len(mappings.azimuth_classes), seed=seed)
        bundle = bundle_from_model(model, mappings, name="tiny", target_layer="feat")
        explainers = {"gradcam": GradCAM(bundle), "saliency": Saliency(bundle)}
        results[seed] = run_seed(bundle, explainers, source, records, options)
        per_seed[seed] = claims(results[seed])
    rows = {row["claim"]: row for row in stability_rows(per_seed)}
    mass = [
        r["trust"]["localisation"]["methods"]["gradcam"]["magnitude"]["relevance_mass_accuracy"]["mean"]
        for r in results.values()
    ]
    row = rows["gradcam / magnitude / relevance mass"]
    assert row["values"] == mass and row["min"] == min(mass) and row["max"] == max(mass)
    verdict = rows["saliency / azimuth / verdict"]
    outcomes = [r["trust"]["verdicts"]["saliency"]["azimuth"]["outcome"] for r in results.values()]
    assert verdict["outcomes"] == outcomes and verdict["holds"] == (outcomes[0] == outcomes[1])
    assert "gradcam − saliency / magnitude / paired relevance_mass_accuracy" in rows
    table = markdown("tiny", list(rows.values()))
    assert f"| gradcam / magnitude / relevance mass | {mass[0]:.3f} | {mass[1]:.3f} | " in table
    assert f"{min(mass):.3f} – {max(mass):.3f}" in table
    assert all(line.count("|") == 6 for line in table.splitlines() if line.startswith("|"))


def test_stability_rows_flag_a_claim_that_flips():
    per_seed = {
        42: {"a": {"value": 0.3, "outcome": "passes"}, "b": {"value": 0.1}},
        1: {"a": {"value": 0.2, "outcome": "inconclusive"}, "b": {"value": 0.4}},
        2: {"a": {"value": 0.25, "outcome": "passes"}},
    }
    rows = {r["claim"]: r for r in stability_rows(per_seed)}
    assert rows["a"]["holds"] is False and (rows["a"]["min"], rows["a"]["max"]) == (0.2, 0.3)
    assert rows["b"]["holds"] is None and rows["b"]["values"] == [0.1, 0.4, None]
    same = stability_rows({1: {"a": {"value": 1.0, "outcome": "fails"}}, 2: {"a": {"value": 2.0, "outcome": "fails"}}})
    assert same[0]["holds"] is True


def test_cached_model_dir_never_trains(tmp_path):
    from hydra import compose, initialize_config_dir

    from benchmarks.trust_stability import CONF

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["model=efficientnet", "seed=3", f"paths.cache_dir={tmp_path}"])

    class Source:
        hash = "abc"

    assert cached_model_dir(cfg, Source()) is None
    assert not (tmp_path / "models").exists()


def test_seeds_run_apart_combine_to_the_table_of_one_run(tmp_path):
    import json

    from benchmarks.trust_stability import combine

    per_seed = {
        42: {"a": {"value": 0.3, "outcome": "passes"}, "b": {"value": 0.1, "outcome": None}},
        1: {"a": {"value": 0.2, "outcome": "inconclusive"}, "b": {"value": 0.4, "outcome": None}},
        2: {"a": {"value": 0.25, "outcome": "passes"}, "b": {"value": 0.5, "outcome": None}},
    }
    files = []
    for seed, seed_claims in per_seed.items():
        path = tmp_path / f"seed{seed}.json"
        run = {"rows": stability_rows({seed: seed_claims}), "missing_seeds": [], "runs": {str(seed): {"seconds": 1}}}
        path.write_text(json.dumps({"settings": {}, "vgg16": run}))
        files.append(path)
    combined = combine(files)["vgg16"]
    assert combined["rows"] == stability_rows(per_seed)
    assert set(combined["runs"]) == {"42", "1", "2"}
