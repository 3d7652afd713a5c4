"""The synthetic demo generator: deterministic, physically calibrated, users' format, true masks."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from scipy.signal import welch

from geomag.dataset import ClassMappings, load_metadata
from geomag.sources import DemoDataSource
from geomag.spectrogram import SpectrogramConfig
from geomag.synthetic import AZIMUTH_POWER_GROUPS, GeneratorConfig, generate_window

SPEC = SpectrogramConfig(grid=(48, 48))


def _window(seed, magnitude="Large", azimuth="N", **config):
    return generate_window(np.random.default_rng(seed), GeneratorConfig(**config), magnitude, azimuth, 21600.0, 3.0)


def test_same_seed_same_data_and_quantisation():
    a, b = _window(7), _window(7)
    for name in "HDZ":
        np.testing.assert_array_equal(a.components[name], b.components[name])
        steps = a.components[name] / 0.01
        np.testing.assert_allclose(steps, np.round(steps), atol=1e-6)  # 0.01 nT quantisation
    assert a.precursor == b.precursor
    assert not np.array_equal(_window(8).components["H"], a.components["H"])


def test_background_is_calibrated_on_lut():
    """Normal window: H amplitude ~0.7 nT/sqrt(Hz) at 10 mHz (LUT), falling roughly as f^-2.4 in PSD."""
    levels, slopes = [], []
    for seed in range(12):
        window = _window(seed, "Normal", "Normal", pulsation_bursts_mean=0.0)
        f, psd = welch(window.components["H"] - window.components["H"].mean(), fs=1.0, nperseg=4096)
        band = (f > 0.005) & (f < 0.02)
        levels.append(np.sqrt(np.interp(0.01, f, psd)))
        slopes.append(np.polyfit(np.log10(f[band]), np.log10(psd[band]), 1)[0])
    assert 0.4 < np.median(levels) < 1.2
    assert -3.0 < np.median(slopes) < -1.8


def test_precursor_band_amplitude_and_polarisation():
    north, east = _window(1, "Large", "N"), _window(1, "Large", "E")
    normal = _window(1, "Normal", "Normal")
    assert normal.precursor is None

    def ulf_rms(window, name):
        f, psd = welch(window.components[name] - window.components[name].mean(), fs=1.0, nperseg=4096)
        band = (f >= 0.001) & (f <= 0.01)
        return np.sqrt(np.trapezoid(psd[band], f[band]))

    # N: H carries the emission, E: D carries it (power sees cos^2 / sin^2 of the azimuth)
    assert ulf_rms(north, "H") > 2 * ulf_rms(north, "D")
    assert ulf_rms(east, "D") > 2 * ulf_rms(east, "H")
    assert ulf_rms(north, "Z") > ulf_rms(normal, "Z")  # Z/H raised
    moderate = _window(1, "Moderate", "N")
    assert ulf_rms(north, "H") > 2 * ulf_rms(moderate, "H")  # amplitude grows with magnitude


def test_power_groups_cover_every_azimuth():
    assert set(AZIMUTH_POWER_GROUPS) == {"Normal", "N", "NE", "E", "SE", "S", "SW", "W", "NW"}
    assert AZIMUTH_POWER_GROUPS["N"] == AZIMUTH_POWER_GROUPS["S"] != AZIMUTH_POWER_GROUPS["E"]


def test_demo_data_set_in_users_format_with_masks(tmp_path):
    source = DemoDataSource(tmp_path, {"n_samples": 30}, SPEC)
    root = source.root
    mappings = ClassMappings.load(root / "class_mappings.json")
    records = load_metadata(root / "metadata.csv", mappings)
    with open(root / "metadata.csv") as handle:
        columns = set(next(csv.DictReader(handle)))
    assert len(records) == 30 and {"magnitude_class", "azimuth_class", "station", "date", "path"} <= columns
    assert {r.magnitude_class for r in records} == {"Normal", "Moderate", "Medium", "Large"}
    for record in records:
        loaded = source.load(record)
        mask = source.mask(record)
        assert loaded.image.shape == (48, 48, 3) and mask.shape == (48, 48)
        assert np.isfinite(loaded.image).all()
        if record.magnitude_class == "Normal":
            assert not mask.any() and record.azimuth_class == "Normal"
            continue
        # the mask is the planted box: its rows lie in the planted band, inside 1-10 mHz
        lo, hi = (float(v) for v in record.extra["precursor_band_hz"].split("-"))
        rows = np.flatnonzero(mask.any(axis=1))
        frequencies = loaded.axes.row_frequency_hz[rows]
        assert rows.size and np.all((frequencies >= lo) & (frequencies < hi))
        assert 0.001 <= lo < hi <= 0.01
        # and the precursor is brighter inside the mask than in the same rows outside it
        power = loaded.image.mean(axis=-1)
        outside = mask.any(axis=1)[:, None] & ~mask
        if record.magnitude_class == "Large" and outside.any():
            assert power[mask].mean() > power[outside].mean()
    # cached: a second source with the same config reuses the folder
    again = DemoDataSource(tmp_path, {"n_samples": 30}, SPEC)
    assert again.root == root and again.hash == source.hash
    assert json.loads((root / "generator.json").read_text())["hash"] == source.hash


def test_unknown_generator_option_is_a_config_error(tmp_path):
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="data.generator"):
        DemoDataSource(tmp_path, {"n_sample": 3}, SPEC)


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_worker_processes_write_byte_identical_files(tmp_path):
    """The spectrograms may be computed by spawned workers: same bytes as in-process generation."""
    from geomag.synthetic import generate_dataset

    config = GeneratorConfig(n_samples=10)
    serial = generate_dataset(tmp_path / "serial", config, SPEC, workers=0)
    pooled = generate_dataset(tmp_path / "pooled", config, SPEC, workers=2)
    serial_files, pooled_files = _files(serial), _files(pooled)
    assert len(serial_files) == 2 * 10 + 4 and serial_files == pooled_files
    assert not list(tmp_path.glob(".*tmp-*"))  # no temp folder left behind


def test_broken_worker_pool_falls_back_to_this_process(tmp_path, monkeypatch, caplog):
    from concurrent.futures.process import BrokenProcessPool

    import geomag.synthetic as synthetic

    real, calls = synthetic._generate_dataset, []

    def flaky(root, cfg, spectrogram, workers):
        calls.append(workers)
        if workers:
            raise BrokenProcessPool("a child process terminated abruptly")
        return real(root, cfg, spectrogram, workers)

    monkeypatch.setattr(synthetic, "_generate_dataset", flaky)
    root = synthetic.generate_dataset(tmp_path / "set", GeneratorConfig(n_samples=4), SPEC, workers=2)
    assert calls == [2, 0] and (root / "metadata.csv").exists()
    assert "generating the demo data set in this process" in caplog.text


# ------------------------------------------------------------------ geomagnetic storms (labelled Normal)
def _hash_of(data: str) -> str:
    from pathlib import Path

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from geomag.synthetic import TUPLE_SETTINGS

    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("config", overrides=[f"data={data}"])
    generator = OmegaConf.to_container(cfg.data.generator, resolve=True)
    generator = {k: tuple(v) if k in TUPLE_SETTINGS else v for k, v in generator.items()}
    spectrogram = SpectrogramConfig.from_config(OmegaConf.to_container(cfg.spectrogram, resolve=True))
    return GeneratorConfig(**generator).hash(spectrogram)


def test_storm_option_changes_the_hash_but_not_the_demo_hash():
    assert _hash_of("demo") == "d18edcba635a"  # existing demo caches stay valid
    assert _hash_of("demo_storms") not in ("d18edcba635a", _hash_of("demo_shortcut"))
    assert "storm_fraction" not in GeneratorConfig().as_dict()  # nor does the data description change
    assert GeneratorConfig(storm_fraction=0.5).as_dict()["storm_depression_nT"] == (100.0, 300.0)
    assert GeneratorConfig(storm_fraction=0.5).hash(SPEC) != GeneratorConfig(storm_fraction=0.4).hash(SPEC)


def test_a_storm_is_a_global_broadband_disturbance():
    from geomag.synthetic import _activity_columns, add_storm

    config = GeneratorConfig(storm_fraction=1.0)
    quiet = _window(3, "Normal", "Normal")
    stormy, info = add_storm(np.random.default_rng(0), config, dict(quiet.components), 3.0)
    assert 100.0 <= info["depression_nT"] <= 300.0 and 10.0 <= info["pc5_power_gain"] <= 30.0
    steps = stormy["H"] / 0.01
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-6)  # still 0.01 nT counts

    def band_power(components, name, lo, hi):
        f, psd = welch(components[name] - components[name].mean(), fs=1.0, nperseg=4096)
        band = (f >= lo) & (f < hi)
        return np.trapezoid(psd[band], f[band])

    f = np.linspace(0.022, 0.1, 400)
    pc3_mean_background = np.trapezoid(config.background_psd_10mHz * (f / 0.01) ** -config.background_slope, f)
    added_pc3 = (info["broadband_power_gain"] - 1) * pc3_mean_background  # relative to the mean quiet level
    for name in "HDZ":  # every component, every band
        ratio = config.component_background_ratio[name]
        assert band_power(stormy, name, 1.7e-3, 6.7e-3) > 5 * band_power(quiet.components, name, 1.7e-3, 6.7e-3)
        gained = band_power(stormy, name, 0.022, 0.1) - band_power(quiet.components, name, 0.022, 0.1)
        assert gained == pytest.approx(ratio * added_pc3, rel=0.5)
    assert np.ptp(stormy["H"]) > np.ptp(quiet.components["H"]) + 50  # main phase and bays
    event = "2016-01-01T09:00:00Z"  # the window starts at 03 UT
    assert _activity_columns(quiet.components, "LUT", event, 21600.0) == {"activity_flag": "quiet", "activity_k": "1"}
    assert _activity_columns(stormy, "LUT", event, 21600.0) == {"activity_flag": "disturbed", "activity_k": "6"}


def test_demo_storm_windows_are_labelled_normal_and_carry_their_activity(tmp_path):
    fractions = {"Normal": 0.5, "Large": 0.5}
    base = {"n_samples": 12, "magnitude_fractions": fractions}
    plain = DemoDataSource(tmp_path, base, SPEC)
    storms = DemoDataSource(tmp_path, {**base, "storm_fraction": 1.0}, SPEC)
    assert storms.hash != plain.hash and "storm_fraction" in storms.describe()["generator"]
    assert "storm_fraction" not in plain.describe()["generator"]
    with open(storms.root / "metadata.csv") as handle:
        rows = list(csv.DictReader(handle))
    with open(plain.root / "metadata.csv") as handle:
        plain_rows = list(csv.DictReader(handle))
    assert "storm_depression_nT" not in plain_rows[0] and {"activity_flag", "activity_k"} <= set(plain_rows[0])
    for row, before in zip(rows, plain_rows):
        same = (plain.root / before["path"]).read_bytes() == (storms.root / row["path"]).read_bytes()
        if row["magnitude_class"] == "Normal":
            assert row["azimuth_class"] == "Normal" and 100 <= float(row["storm_depression_nT"]) <= 300
            assert not same and int(row["activity_k"]) > int(before["activity_k"])
        else:  # windows without a storm are the same windows
            assert row["storm_depression_nT"] == "" and same and row["activity_k"] == before["activity_k"]
    normal = [r for r in rows if r["magnitude_class"] == "Normal"]
    assert sum(r["activity_flag"] == "disturbed" for r in normal) >= len(normal) // 2
    assert all(r["activity_flag"] != "disturbed" for r in plain_rows)
    record = storms.records()[rows.index(normal[0])]
    activity = storms.activity(record)
    assert activity.k == int(normal[0]["activity_k"]) and activity.basis == ["K"]
    assert activity.window_end.startswith(normal[0]["event_time"][:16])
