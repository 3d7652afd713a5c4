"""A lab's own files, as users have them: tiny two-head .keras models with custom head names and
their class mappings (each in its own class order), and 224x224 jet PNGs (panels H, D, Z stacked,
no axes) named like ``Large_MLB_2021-04-16`` listed in a metadata CSV."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGNITUDE = ["Normal", "Moderate", "Medium", "Large"]
AZIMUTH = ["N", "E", "S", "W"]
# (magnitude, azimuth, station, date)
SAMPLES = [
    ("Large", "N", "MLB", "2021-04-16"),
    ("Medium", "E", "SCN", "2020-11-02"),
    ("Moderate", "S", "TND", "2019-07-14"),
    ("Normal", "W", "MLB", "2021-01-03"),
]
# head name -> output layer name of the lab's models
HEAD_OUTPUTS = {"magnitude": "mag_out", "azimuth": "azi_out"}


@dataclass
class LabFiles:
    """Where :func:`make_lab_files` put everything."""

    root: Path
    metadata_csv: Path
    models: dict[str, Path]  # model stem -> .keras file
    mappings: dict[str, Path]  # model stem -> its <stem>.class_mappings.json
    orders: dict[str, dict[str, list[str]]]  # model stem -> head -> class order


def _mappings(magnitude: list[str], azimuth: list[str]) -> dict:
    return {
        "magnitude_classes": magnitude,
        "azimuth_classes": azimuth,
        "magnitude_to_idx": {n: i for i, n in enumerate(magnitude)},
        "azimuth_to_idx": {n: i for i, n in enumerate(azimuth)},
    }


def lab_model(seed: int, size: int = 32):
    """A tiny functional two-head classifier whose outputs are named ``mag_out`` and ``azi_out``."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((size, size, 3), name="spectrogram")
    x = keras.layers.Conv2D(6, 3, activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = [
        keras.layers.Dense(len(MAGNITUDE), activation="softmax", name=HEAD_OUTPUTS["magnitude"])(x),
        keras.layers.Dense(len(AZIMUTH), activation="softmax", name=HEAD_OUTPUTS["azimuth"])(x),
    ]
    return keras.Model(inputs, outputs, name=f"lab_{seed}")


def write_stacked_png(path: Path, seed: int) -> Path:
    """A 224x224 RGB PNG: three jet panels H, D, Z stacked top to bottom, no axes."""
    from geomag.images import render_jet_stacked, save_spectrogram_png

    rng = np.random.default_rng(seed)
    panels = [rng.normal(size=(40, 60)).cumsum(axis=1) for _ in range(3)]
    return save_spectrogram_png(path, render_jet_stacked(panels, shape=(224, 224)))


def make_lab_files(root: Path, stems: tuple[str, str] = ("our_vgg16", "our_efficientnet")) -> LabFiles:
    """Two lab models ``<root>/models/<stem>.keras`` (class orders differ) and four stacked jet PNGs."""
    root.mkdir(parents=True, exist_ok=True)
    images = root / "spectrograms"
    rows = []
    for i, (magnitude, azimuth, station, date) in enumerate(SAMPLES):
        name = f"{magnitude}_{station}_{date}"
        write_stacked_png(images / f"{name}.png", seed=i)
        rows.append([magnitude, azimuth, station, date, f"spectrograms/{name}.png"])
    metadata = root / "metadata.csv"
    with open(metadata, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["magnitude_class", "azimuth_class", "station", "date", "path"])
        writer.writerows(rows)
    orders = {
        stems[0]: {"magnitude": MAGNITUDE, "azimuth": AZIMUTH},
        stems[1]: {"magnitude": sorted(MAGNITUDE), "azimuth": AZIMUTH[::-1]},
    }
    models, mappings = {}, {}
    for seed, (stem, order) in enumerate(orders.items()):
        models[stem] = root / "models" / f"{stem}.keras"
        models[stem].parent.mkdir(exist_ok=True)
        lab_model(seed).save(models[stem])
        mappings[stem] = root / "models" / f"{stem}.class_mappings.json"
        mappings[stem].write_text(json.dumps(_mappings(order["magnitude"], order["azimuth"]), indent=1))
    return LabFiles(root, metadata, models, mappings, orders)
