"""conf/xai + conf/method compose with Hydra and instantiate the explainers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from core.errors import ConfigError
from core.names import METHOD_TITLES
from geomag.axes import SpectrogramAxes
from tests.conftest import tiny_two_head_model
from xai.explainers import build_explainers
from xai.explainers.gradcam import GradCAM
from xai.explainers.gradcam_plus_plus import GradcamPlusPlus
from xai.explainers.hirescam import HiResCAM
from xai.explainers.layercam import Layercam
from xai.explainers.occlusion import Occlusion
from xai.explainers.saliency import Saliency
from xai.explainers.scorecam import Scorecam
from xai.explainers.smoothgrad import SmoothGrad

CONF = Path(__file__).resolve().parents[1] / "conf"


def _missing_groups() -> list[str]:
    """``~group`` overrides for top-level defaults whose config file is not written (yet)."""
    config = OmegaConf.load(CONF / "config.yaml")
    missing = []
    for entry in config.get("defaults", []):
        if isinstance(entry, str) or not hasattr(entry, "items"):
            continue
        for group, name in entry.items():
            if group.startswith("override "):  # hydra/job_logging etc.: Hydra's own groups
                continue
            if group != "xai" and not (CONF / group / f"{name}.yaml").exists():
                missing.append(f"~{group}")
    return missing


def _xai(name: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=[f"xai={name}", *_missing_groups()]).xai


def test_default_full_and_gradcam_compose():
    default, full, gradcam = _xai("default"), _xai("full"), _xai("gradcam")
    assert list(default.methods) == ["gradcam", "saliency", "smoothgrad"]
    assert list(full.methods) == [
        "gradcam",
        "saliency",
        "smoothgrad",
        "gradcam_plus_plus",
        "layercam",
        "scorecam",
        "hirescam",
        "occlusion",
    ]
    assert list(_xai("reliance").methods) == ["gradcam", "saliency", "occlusion"]
    assert list(gradcam.methods) == ["gradcam"]
    for cfg in (default, full, gradcam):
        assert list(cfg.heads) == ["magnitude", "azimuth"]
        assert cfg.explained_class == "predicted" and cfg.batch_size == 8
    assert full.methods.smoothgrad.smooth_samples == 20 and full.methods.smoothgrad.smooth_noise == 0.05
    assert full.methods.smoothgrad.seed == 0 and full.methods.scorecam.max_N == 10
    assert full.methods.hirescam == {"_target_": "xai.explainers.hirescam.HiResCAM", "jit_compile": False}
    for name in full.methods:
        assert full.methods[name]._target_.startswith(f"xai.explainers.{name}.")
        assert name in METHOD_TITLES, f"{name} has no title for figures and reports"


def test_every_method_config_instantiates_and_explains():
    methods = _xai("full").methods
    model = tiny_two_head_model(seed=9)
    explainers = build_explainers(methods, model, heads=("magnitude", "azimuth"))
    expected = {
        "gradcam": GradCAM,
        "saliency": Saliency,
        "smoothgrad": SmoothGrad,
        "gradcam_plus_plus": GradcamPlusPlus,
        "layercam": Layercam,
        "scorecam": Scorecam,
        "hirescam": HiResCAM,
        "occlusion": Occlusion,
    }
    assert {name: type(e) for name, e in explainers.items()} == expected
    assert explainers["smoothgrad"].smooth_samples == 20 and explainers["scorecam"].max_N == 10
    x = np.random.default_rng(0).normal(size=(1, 32, 32, 3)).astype(np.float32)
    axes = SpectrogramAxes.regular(  # occlusion's regions are physical: it needs the grid's axes
        layout="channels",
        components=("H", "D", "Z"),
        n_rows=32,
        n_cols=32,
        frequency_range_hz=(0.0005, 0.1),
        frequency_scale="log",
        window_s=6 * 3600,
    )
    explainers["occlusion"].use_axes(axes)
    for name, explainer in explainers.items():
        result = explainer(x, "azimuth")
        assert result.method == name and result.maps.shape[0] == 1 and np.isfinite(result.maps).all()


def test_bad_method_option_is_a_config_error():
    methods = OmegaConf.create({"smoothgrad": {"_target_": "xai.explainers.smoothgrad.SmoothGrad", "smooth_sample": 3}})
    with pytest.raises(ConfigError, match="smooth_sample"):
        build_explainers(methods, tiny_two_head_model())
    methods = OmegaConf.create({"nope": {"_target_": "xai.explainers.nope.Nope"}})
    with pytest.raises(ConfigError, match="xai.methods.nope"):
        build_explainers(methods, tiny_two_head_model())
