"""Data sources: users' CSV with raw files, jet PNGs and arrays, through one code path."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from core.errors import InputDataError
from geomag.images import render_jet_stacked, save_spectrogram_png
from geomag.sources import CsvDataSource
from geomag.spectrogram import SpectrogramConfig

MAPPINGS = (
    '{"magnitude_classes": ["Normal", "Large"], "azimuth_classes": ["Normal", "N"], '
    '"magnitude_to_idx": {"Normal": 0, "Large": 1}, "azimuth_to_idx": {"Normal": 0, "N": 1}}'
)
HEADER = "magnitude_class,azimuth_class,station,date,path,event_time\n"


def _csv(tmp_path, rows):
    (tmp_path / "class_mappings.json").write_text(MAPPINGS)
    (tmp_path / "meta.csv").write_text(HEADER + "".join(rows))
    return tmp_path / "meta.csv"


@pytest.mark.shared
def test_raw_bmkg_day_becomes_a_spectrogram_with_physical_axes(tmp_path, shared_dir):
    shutil.copy(shared_dir / "data/bmkg/S230101.LUT.gz", tmp_path)
    csv_path = _csv(tmp_path, ["Large,N,LUT,2023-01-01,S230101.LUT.gz,2023-01-01T12:00:00Z\n"])
    source = CsvDataSource(csv_path, spectrogram=SpectrogramConfig())
    record = source.records()[0]
    assert record.name == "Large_LUT_2023-01-01"
    loaded = source.load(record)
    assert loaded.image.shape == (112, 112, 3) and np.isfinite(loaded.image).all()
    assert loaded.axes.event_time.startswith("2023-01-01T12:00")
    quality = loaded.axes.extra["quality"]
    assert quality["ok"], quality["warnings"]
    # LUT's quiet-day ULF power sits at a plausible level (1-10 mHz band RMS 0.17-0.42 nT)
    assert 0.17 <= quality["components"]["H"]["band_rms_nT"]["ULF_1_10mHz"] <= 0.42


@pytest.mark.shared
def test_raw_file_without_event_time_is_refused(tmp_path, shared_dir):
    shutil.copy(shared_dir / "data/bmkg/S230101.LUT.gz", tmp_path)
    csv_path = _csv(tmp_path, ["Large,N,LUT,2023-01-01,S230101.LUT.gz,\n"])
    source = CsvDataSource(csv_path, spectrogram=SpectrogramConfig())
    with pytest.raises(InputDataError, match="event_time"):
        source.load(source.records()[0])


def test_users_jet_png_reads_with_config_axes(tmp_path):
    panels = [np.linspace(0, 1, 75 * 80).reshape(75, 80) + k for k in range(3)]
    save_spectrogram_png(tmp_path / "a.png", render_jet_stacked(panels, shape=(224, 224)))
    csv_path = _csv(tmp_path, ["Normal,Normal,MLB,2021-04-16,a.png,\n"])
    image = {
        "layout": "stacked",
        "frequency_range_hz": [0.001, 0.5],
        "frequency_scale": "linear",
        "expected_shape": [224, 224],
        "colormap": "jet",
        "invert_colormap": True,
    }
    source = CsvDataSource(csv_path, image=image)
    loaded = source.load(source.records()[0])
    assert loaded.image.shape == (224, 224, 3) and loaded.scalar.shape == (224, 224)
    assert loaded.axes.layout == "stacked" and loaded.axes.row_component[0] == 0 and loaded.axes.row_component[-1] == 2


def test_array_with_nan_is_refused_naming_the_file(tmp_path):
    array = np.zeros((32, 32, 3), dtype=np.float32)
    array[3, 3, 0] = np.nan
    np.save(tmp_path / "bad.npy", array)
    csv_path = _csv(tmp_path, ["Normal,Normal,MLB,2021-04-16,bad.npy,\n"])
    image = {"layout": "channels", "channels": 3}
    source = CsvDataSource(csv_path, image=image)
    with pytest.raises(InputDataError, match="bad.npy"):
        source.load(source.records()[0])


def test_missing_csv_is_reported(tmp_path):
    with pytest.raises(InputDataError, match="nowhere.csv"):
        CsvDataSource(tmp_path / "nowhere.csv")


def test_hydra_builds_the_csv_source_from_plain_values(tmp_path):
    """conf/data/*.yaml instantiate with ``_convert_: all``: the sources never see OmegaConf containers."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from tests.conftest import ROOT

    csv_path = _csv(tmp_path, ["Normal,Normal,MLB,2021-04-16,a.png,\n"])
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        for data in ("demo", "demo_shortcut", "csv"):
            cfg = compose(config_name="config", overrides=[f"data={data}", f"paths.cache_dir={tmp_path}"])
            assert cfg.data._convert_ == "all"
        cfg = compose(
            config_name="config",
            overrides=["data=csv", f"data.metadata_csv={csv_path}", "spectrogram.gaps.max_interpolate_s=30"],
        )
        source = instantiate(cfg.data)
    assert isinstance(source, CsvDataSource)
    assert type(source.gaps) is dict and source.gaps["max_interpolate_s"] == 30
    assert source.detrend == "linear" and source.image_spec.components == ("H", "D", "Z")
    assert source.spectrogram.components == ("H", "D", "Z") and type(source.spectrogram.extra["gaps"]) is dict
