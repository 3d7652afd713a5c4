"""The notebook API: ``from xai import explain, explain_dataset, compare_models`` - the tasks' code paths without Hydra.

* :func:`explain`: a model (``keras.Model``, a model file, or a loaded bundle) + class mappings +
  spectrogram images / arrays / raw files -> the ``visualization_results.json`` structure (through
  :func:`xai.visualization.explain_records`, the code path of ``task=explain``); figures, heatmap
  NPZs and the JSON are written only when ``figures_dir`` is given.
* :func:`explain_dataset`: a whole metadata CSV through :func:`xai.dataset.explain_dataset`
  (``task=dataset``), with the trust measures.
* :func:`compare`: run or sweep folders -> the comparison (:func:`xai.compare.compare_runs`).

The defaults are the project's YAML defaults: methods ``conf/xai/default.yaml``, image axes
``conf/data/csv.yaml`` (``image``: stacked jet panels H, D, Z), spectrograms of raw files
``conf/spectrogram/default.yaml``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.names import HEADS

log = logging.getLogger(__name__)

CONF = Path(__file__).resolve().parents[1] / "conf"
DEFAULT_METHODS = ("gradcam", "saliency", "smoothgrad")  # conf/xai/default.yaml


@dataclass
class ExplainOptions:
    """Further settings of :func:`explain` (their ``conf/xai`` / ``conf/spectrogram`` / ``conf/model`` keys)."""

    explained_class: Any = "predicted"  # predicted | true | a class name | {head: name}
    batch_size: int = 8
    spectrogram: Mapping | None = None  # raw files: conf/spectrogram keys over its defaults
    target_layer: str | None = None  # Grad-CAM target (null: the last convolutional feature map)
    preprocessing: str = "none"  # the model's input scaling (model.preprocessing)
    name: str | None = None  # the model's name (default: the file's stem, else the Keras model's name)

    @classmethod
    def of(cls, options: ExplainOptions | Mapping | None) -> ExplainOptions:
        if isinstance(options, cls):
            return options
        try:
            return cls(**dict(options or {}))
        except TypeError as exc:
            raise ConfigError(f"options: {exc}") from None


def _yaml(path: Path) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(path), resolve=False)


def method_configs(methods: Sequence[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """``{name: method config}``: names are read from ``conf/method/<name>.yaml``; a mapping is taken as is."""
    if isinstance(methods, Mapping):
        return dict(methods)
    names = [methods] if isinstance(methods, str) else list(methods or DEFAULT_METHODS)
    configs = {}
    for name in names:
        path = CONF / "method" / f"{name}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in (CONF / "method").glob("*.yaml"))
            raise ConfigError(f"methods: unknown method {name!r}; choose from {', '.join(known)}")
        configs[str(name)] = _yaml(path)
    return configs


def default_image_axes() -> dict:
    """The users' image format of ``conf/data/csv.yaml`` (``image``), without its fixed 224x224 size."""
    image = dict(_yaml(CONF / "data" / "csv.yaml")["image"])
    image["expected_shape"] = None
    return image


def _image_axes(axes: Any) -> Any:
    from geomag.images import ImageSpec

    if isinstance(axes, ImageSpec):
        return axes
    return {**default_image_axes(), **dict(axes or {})}


def _spectrogram(overrides: Mapping | None) -> dict:
    return {**_yaml(CONF / "spectrogram" / "default.yaml"), **dict(overrides or {})}


def _heads(heads: Sequence[str] | Mapping[str, str] | None) -> tuple[Mapping[str, str] | None, tuple[str, ...]]:
    """``(head -> output name, heads to explain)`` of ``heads``: a mapping names the model's outputs
    (every head explained), a sequence selects heads of outputs named after them."""
    if heads is None:
        return None, HEADS
    if isinstance(heads, Mapping):
        return {str(k): str(v) for k, v in heads.items()}, HEADS
    selected = (heads,) if isinstance(heads, str) else tuple(str(h) for h in heads)
    return None, selected


def load_bundle(model: Any, class_mappings: Any, outputs: Mapping[str, str] | None, options: ExplainOptions) -> Any:
    """A :class:`~models.loading.ModelBundle` of a bundle, a ``keras.Model`` or a model file (then
    ``class_mappings=None`` takes the mappings beside the file)."""
    from models.loading import ModelBundle, bundle_from_model, load_model_bundle, sibling_class_mappings

    if isinstance(model, ModelBundle):
        return model
    if isinstance(model, (str, os.PathLike)):
        mappings = class_mappings if class_mappings is not None else sibling_class_mappings(model)
        return load_model_bundle(
            model,
            mappings,
            name=options.name,
            heads=outputs,
            target_layer=options.target_layer,
            preprocessing=options.preprocessing,
        )
    if class_mappings is None:
        raise ConfigError("class_mappings: required with an in-memory model (a dict or a class_mappings.json path)")
    return bundle_from_model(
        model,
        class_mappings,
        name=options.name,
        heads=outputs,
        target_layer=options.target_layer,
        preprocessing=options.preprocessing,
    )


def explain(
    model: Any,
    class_mappings: Any = None,
    inputs: Any = (),
    axes: Any = None,
    methods: Sequence[str] | Mapping[str, Any] | None = None,
    heads: Sequence[str] | Mapping[str, str] | None = None,
    figures_dir: str | os.PathLike | None = None,
    options: ExplainOptions | Mapping | None = None,
) -> dict:
    """Explain spectrograms with a classifier; returns the ``visualization_results.json`` structure.

    ``model``: a ``keras.Model``, a ``.keras``/``.h5``/SavedModel path or a ``ModelBundle``;
    ``class_mappings``: a ``class_mappings.json`` path or its dict (``None`` with a model file: the
    mappings beside it). ``inputs``: image (PNG/JPG) or ``.npy`` paths, in-memory arrays
    ``(rows, cols, channels)``, raw 1-second files, or a mapping ``{sample name: path | array |
    {"path"/"array", "event_time", "magnitude_class", "azimuth_class"}}`` (raw files need an
    ``event_time``). ``axes``: the physical axes of images/arrays (``conf/data/csv.yaml`` ``image``
    keys over its defaults, or an ``ImageSpec``). ``methods``: names of ``conf/method/*.yaml`` or
    ``{name: config}``. ``heads``: heads to explain, or ``{head: output layer name}``.
    ``figures_dir``: write each sample's figure, heatmap NPZ and the results JSON there; ``None``
    writes nothing. ``options``: :class:`ExplainOptions` (or its keys).
    """
    _quiet_tensorflow()
    from geomag.inputs import InputsSource
    from xai.explainers import build_explainers
    from xai.pipeline import check_heads
    from xai.runtime import environment
    from xai.visualization import ExplainRequest, explain_records

    options = ExplainOptions.of(options)
    outputs, selected = _heads(heads)
    bundle = load_bundle(model, class_mappings, outputs, options)
    source = InputsSource(inputs, _image_axes(axes), _spectrogram(options.spectrogram))
    request = ExplainRequest(
        bundle,
        build_explainers(method_configs(methods), bundle),
        heads=check_heads(bundle, selected),
        explained_class=options.explained_class,
        batch_size=options.batch_size,
        environment=environment("CPU" if not _gpus() else "GPU"),
    )
    folder = None if figures_dir is None else Path(figures_dir)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    return explain_records(request, source, source.records(), folder)


def _quiet_tensorflow() -> None:
    """Load TensorFlow without its C++ start-up lines (``TF_CPP_MIN_LOG_LEVEL``, default 3)."""
    from core.quiet import start_tensorflow

    start_tensorflow(int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")))


def _gpus() -> list:
    import tensorflow as tf

    return tf.config.list_physical_devices("GPU")


def explain_dataset(
    model: Any,
    class_mappings: Any,
    metadata_csv: str | os.PathLike,
    out_dir: str | os.PathLike,
    axes: Any = None,
    methods: Sequence[str] | Mapping[str, Any] | None = None,
    heads: Sequence[str] | Mapping[str, str] | None = None,
    options: Mapping | None = None,
) -> dict:
    """Explain every sample of a metadata CSV (``magnitude_class, azimuth_class, station, date, path``)
    into ``out_dir`` with the trust measures; returns ``dataset_results.json``'s content.

    ``options``: :class:`xai.dataset.DatasetOptions` keys (``conf/task/dataset.yaml``, e.g.
    ``{"faithfulness_samples": 10, "randomisation_samples": 0}``) plus ``explained_class`` etc. of
    :class:`ExplainOptions`. Other arguments as in :func:`explain`.
    """
    _quiet_tensorflow()
    from geomag.sources import CsvDataSource
    from xai.dataset import DatasetOptions
    from xai.dataset import explain_dataset as run_dataset
    from xai.explainers import build_explainers

    settings = dict(options or {})
    explain_keys = {k: settings.pop(k) for k in list(settings) if k in ExplainOptions.__dataclass_fields__}
    explained = ExplainOptions.of(explain_keys)
    outputs, selected = _heads(heads)
    bundle = load_bundle(model, class_mappings, outputs, explained)
    source = CsvDataSource(metadata_csv, image=_image_axes(axes), spectrogram=_spectrogram(explained.spectrogram))
    try:
        dataset_options = DatasetOptions(heads=list(selected), explained_class=explained.explained_class, **settings)
    except TypeError as exc:
        raise ConfigError(f"options: {exc}") from None
    explainers = build_explainers(method_configs(methods), bundle)
    return run_dataset(bundle, explainers, source, source.records(), Path(out_dir), dataset_options)


def compare_models(folders: Sequence[str | os.PathLike] | str | os.PathLike, out_dir: str | os.PathLike) -> dict:
    """Compare the models' results under run or sweep ``folders`` (e.g. ``figures_dir`` folders of
    :func:`explain`, one per model) into ``out_dir``; returns ``comparison.json``'s content."""
    from xai.compare import compare_runs

    if isinstance(folders, (str, os.PathLike)):
        folders = [folders]
    return compare_runs(list(folders), out_dir)
