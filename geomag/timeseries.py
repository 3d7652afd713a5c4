"""The common time-series object every reader returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class GeomagSeries:
    """Regularly sampled geomagnetic vector data.

    Attributes:
        times: ``datetime64[ms]`` UTC sample times, strictly increasing, shape ``(n,)``.
        components: element letter as the file names it (``"H"``, ``"D"``, ``"Z"``, ``"E"``,
            ``"X"``, ``"Y"``, ``"F"``, ``"S"``, ``"G"``) -> float64 values, shape ``(n,)``;
            missing samples are NaN. Field values are in nT; ``D`` stays in the file's unit
            (minutes of arc in IAGA-2002, degrees in ImagCDF, nT in FRG-604RC), which
            ``metadata["units"]`` names.
        station: IAGA or BMKG station code.
        sampling_interval_s: seconds between samples (1.0 for 1-second data).
        latitude, longitude, elevation: geodetic location where known, else None.
        source: path of the file the data came from.
        metadata: any further header facts (free form, JSON-serialisable).
    """

    times: np.ndarray
    components: dict[str, np.ndarray]
    station: str
    sampling_interval_s: float = 1.0
    latitude: float | None = None
    longitude: float | None = None
    elevation: float | None = None
    source: str | None = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.times = np.asarray(self.times).astype("datetime64[ms]")
        n = self.times.shape[0]
        for name, values in list(self.components.items()):
            values = np.asarray(values, dtype=np.float64)
            if values.shape != (n,):
                raise ValueError(f"component {name} has shape {values.shape}, expected ({n},)")
            self.components[name] = values

    def __len__(self) -> int:
        return int(self.times.shape[0])

    @property
    def component_names(self) -> tuple[str, ...]:
        return tuple(self.components)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.components[name]

    def missing_fraction(self, name: str) -> float:
        values = self.components[name]
        return float(np.mean(~np.isfinite(values))) if values.size else 1.0

    def slice_time(self, start: np.datetime64, end: np.datetime64) -> "GeomagSeries":
        """Samples with ``start <= t < end`` as a new series (metadata shared)."""
        keep = (self.times >= np.datetime64(start, "ms")) & (self.times < np.datetime64(end, "ms"))
        return GeomagSeries(
            times=self.times[keep],
            components={k: v[keep] for k, v in self.components.items()},
            station=self.station,
            sampling_interval_s=self.sampling_interval_s,
            latitude=self.latitude,
            longitude=self.longitude,
            elevation=self.elevation,
            source=self.source,
            metadata=dict(self.metadata),
        )
