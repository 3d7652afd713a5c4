"""Every option of every config group (found on disk) composes with Hydra; tasks instantiate, targets import."""

from __future__ import annotations

from pathlib import Path

import hydra
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ("task", "model", "data", "xai", "method", "experiment", "spectrogram", "report", "activity")
RESOLVED = ("data", "spectrogram", "model", "xai", "task")  # the sections a run reads


def _options(group: str) -> list[str]:
    folder = CONF / group
    assert folder.is_dir(), f"config group folder {folder} is missing"
    names = sorted(path.stem for path in folder.glob("*.yaml"))
    assert names, f"config group folder {folder} holds no .yaml file"
    return names


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def _resolved(*overrides: str) -> dict:
    """The sections a run reads, resolved as in a run (``${hydra:runtime.cwd}`` included); ``???``
    values (set by the user, e.g. ``data.metadata_csv``) stay as they are."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides), return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    try:
        return {s: OmegaConf.to_container(cfg[s], resolve=True) for s in RESOLVED}
    finally:
        HydraConfig.instance().cfg = None


def _override(group: str, name: str) -> str:
    if group == "method":  # not selected at the top level: xai/*.yaml pull methods in; probe one alone
        return f"+method@probe={name}"
    if group == "experiment":
        return f"+experiment={name}"
    return f"{group}={name}"


@pytest.mark.parametrize(("group", "name"), [(g, n) for g in GROUPS for n in _options(g)])
def test_option_composes_and_resolves(group, name):
    resolved = _resolved(_override(group, name))
    assert resolved["task"]["_target_"] and resolved["data"]["_target_"] and resolved["xai"]["methods"]
    if "cache_dir" in resolved["data"]:  # the demo sources: ${paths.cache_dir}, from the run's folder
        assert Path(resolved["data"]["cache_dir"]).is_absolute()
    if group == "method":
        assert _compose(_override(group, name)).probe._target_, f"conf/method/{name}.yaml has no _target_"


def test_expected_options_exist():
    assert {"vgg16", "efficientnet", "_base"} <= set(_options("model"))
    assert {"explain", "dataset", "shortcut", "train", "compare"} <= set(_options("task"))
    assert {"demo", "demo_shortcut", "csv"} <= set(_options("data"))
    assert {"default", "full", "gradcam"} <= set(_options("xai"))
    assert "shortcut" in _options("experiment")


@pytest.mark.parametrize("name", _options("task"))
def test_task_instantiates_to_a_callable(name):
    cfg = _compose(f"task={name}")
    assert cfg.task._partial_ is True
    task = hydra.utils.instantiate(cfg.task)
    assert callable(task)
    assert cfg.task._target_.startswith("xai."), "tasks live in the xai layer (models/ never imports xai)"


def test_every_task_module_exposes_run():
    for name in _options("task"):
        target = str(_compose(f"task={name}").task._target_)
        if target.startswith("xai.tasks."):
            assert target == f"xai.tasks.{name}.run"


@pytest.mark.parametrize("name", _options("method"))
def test_method_target_class_is_importable(name):
    target = _compose(f"+method@probe={name}").probe._target_
    assert isinstance(hydra.utils.get_class(target), type)


@pytest.mark.parametrize("name", _options("xai"))
def test_xai_method_targets_are_importable(name):
    methods = _compose(f"xai={name}").xai.methods
    assert methods, f"conf/xai/{name}.yaml selects no method"
    for method in methods.values():
        assert isinstance(hydra.utils.get_class(method._target_), type)


@pytest.mark.parametrize("name", [n for n in _options("model") if not n.startswith("_")])
def test_model_is_complete_and_its_builder_importable(name):
    model = _compose(f"model={name}").model
    assert model.architecture == name
    assert model.name is None  # the name comes from the file's stem or the architecture
    assert OmegaConf.missing_keys(model) == set(), f"conf/model/{name}.yaml leaves values of _base.yaml unset"
    assert callable(hydra.utils.get_method(model.builder._target_))
    for spec in ("head", "normalization"):
        assert isinstance(hydra.utils.get_class(model.builder[spec]._target_), type)


def test_model_base_is_shared_not_selectable():
    """``_base.yaml`` holds the shared settings; alone it leaves the architecture's values unset."""
    base = _compose("model=_base").model
    assert {"model.architecture", "model.builder._target_", "model.builder.input_shape"} <= OmegaConf.missing_keys(base)
    for name in (n for n in _options("model") if not n.startswith("_")):
        defaults = OmegaConf.load(CONF / "model" / f"{name}.yaml").defaults
        assert list(defaults) == ["_base", "_self_"], f"conf/model/{name}.yaml must extend _base.yaml"


def test_shortcut_experiment_selects_task_and_data_together():
    experiment = _compose("+experiment=shortcut")
    assert experiment.task._target_ == "xai.tasks.shortcut.run"
    assert experiment.data.generator.shortcut_frequency_hz is not None  # data=demo_shortcut
    occlusion = "xai.methods.occlusion"
    edges = experiment.xai.methods.occlusion.regions.band_edges_hz
    by_hand = _compose(
        "task=shortcut", "data=demo_shortcut", "xai=reliance", "task.methods=[gradcam,saliency,occlusion]",
        f"{occlusion}.background=pooled", f"{occlusion}.agreement_steps=0",
        f"{occlusion}.regions.band_edges_hz=[{','.join(str(e) for e in edges)}]",
    )  # fmt: skip
    assert OmegaConf.to_yaml(experiment) == OmegaConf.to_yaml(by_hand)
    assert sum(0.022 <= e <= 0.1 for e in edges) == 7  # 22-100 mHz in six bands: narrow enough for a line
    default = _compose()
    assert (
        default.task._target_ == "xai.tasks.explain.run" and default.data.generator.get("shortcut_frequency_hz") is None
    )


def test_train_task_points_at_xai_tasks_train():
    assert _compose("task=train").task._target_ == "xai.tasks.train.run"
