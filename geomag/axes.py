"""Physical axes of a spectrogram image: which frequency, component and time each pixel is.

Conventions (used everywhere in the project):

* image row 0 is the **top** row; inside a frequency panel the frequency *decreases*
  with the row index (low frequencies at the bottom, as a spectrogram is drawn);
* image column 0 is the **earliest** time; ``column_time_s`` is the time of the column
  centre in seconds *before* the event (positive numbers, decreasing to ~0 on the right);
* ``layout="channels"``: the image is ``(n_freq, n_time, n_components)`` and every row
  belongs to every component (``row_component == -1``);
* ``layout="stacked"``: the image is ``(n_rows, n_time, 3)`` RGB with one panel per
  component stacked vertically (H on top, then D, then Z for the users' layout);
  ``row_component`` gives the component index of every row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from core.errors import ConfigError

LAYOUTS = ("channels", "stacked")
SCALES = ("log", "linear")


def _panel_frequencies(n_rows: int, fmin: float, fmax: float, scale: str) -> np.ndarray:
    """Row-centre frequencies of one panel, top row (highest frequency) first."""
    position = (np.arange(n_rows)[::-1] + 0.5) / n_rows  # 0 = bottom edge, 1 = top edge
    if scale == "log":
        return fmin * (fmax / fmin) ** position
    return fmin + (fmax - fmin) * position


@dataclass(frozen=True, eq=False)
class SpectrogramAxes:
    """Pixel -> (frequency in Hz, component, seconds before the event) mapping."""

    layout: str
    components: tuple[str, ...]
    row_frequency_hz: np.ndarray
    row_component: np.ndarray
    column_time_s: np.ndarray
    frequency_range_hz: tuple[float, float]
    frequency_scale: str
    window_s: float
    event_time: str | None = None
    extra: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ factories
    @classmethod
    def regular(
        cls,
        *,
        layout: str,
        components: tuple[str, ...] | list[str],
        n_rows: int,
        n_cols: int,
        frequency_range_hz: tuple[float, float],
        frequency_scale: str,
        window_s: float,
        event_time: str | None = None,
    ) -> "SpectrogramAxes":
        """Axes of a regular grid: equal panels, log- or linearly spaced rows, uniform columns."""
        fmin, fmax = (float(v) for v in frequency_range_hz)
        components = tuple(components)
        if layout not in LAYOUTS:
            raise ConfigError(f"unknown spectrogram layout {layout!r}; expected one of {LAYOUTS}")
        if frequency_scale not in SCALES:
            raise ConfigError(f"unknown frequency scale {frequency_scale!r}; expected one of {SCALES}")
        if not 0 < fmin < fmax:
            raise ConfigError(f"frequency range must satisfy 0 < fmin < fmax, got {frequency_range_hz}")
        if n_rows < 1 or n_cols < 1 or window_s <= 0:
            raise ConfigError(f"invalid grid {n_rows}x{n_cols} over {window_s} s")
        if layout == "channels":
            row_frequency = _panel_frequencies(n_rows, fmin, fmax, frequency_scale)
            row_component = np.full(n_rows, -1, dtype=np.int64)
        else:
            panels = np.array_split(np.arange(n_rows), len(components))
            row_frequency = np.concatenate([_panel_frequencies(len(p), fmin, fmax, frequency_scale) for p in panels])
            row_component = np.concatenate([np.full(len(p), i, dtype=np.int64) for i, p in enumerate(panels)])
        column_time = window_s * (1.0 - (np.arange(n_cols) + 0.5) / n_cols)
        return cls(
            layout=layout,
            components=components,
            row_frequency_hz=row_frequency,
            row_component=row_component,
            column_time_s=column_time,
            frequency_range_hz=(fmin, fmax),
            frequency_scale=frequency_scale,
            window_s=float(window_s),
            event_time=event_time,
        )

    # ------------------------------------------------------------------ shape facts
    @property
    def shape(self) -> tuple[int, int]:
        """``(n_rows, n_cols)`` of the image grid."""
        return int(self.row_frequency_hz.shape[0]), int(self.column_time_s.shape[0])

    @property
    def column_hours_before(self) -> np.ndarray:
        return self.column_time_s / 3600.0

    def panel_rows(self, component: str | int) -> np.ndarray:
        """Row indices that belong to a component (all rows in the channels layout)."""
        index = self.component_index(component)
        if self.layout == "channels":
            return np.arange(self.shape[0])
        return np.flatnonzero(self.row_component == index)

    def component_index(self, component: str | int) -> int:
        if isinstance(component, (int, np.integer)):
            if not 0 <= component < len(self.components):
                raise ConfigError(f"component index {component} outside {self.components}")
            return int(component)
        if component not in self.components:
            raise ConfigError(f"unknown component {component!r}; axes have {self.components}")
        return self.components.index(component)

    # ------------------------------------------------------------------ lookups
    def row_of(self, frequency_hz: float, component: str | int | None = None) -> int:
        """Image row whose centre frequency is nearest (log distance on log axes)."""
        rows = self.panel_rows(component if component is not None else 0)
        freqs = self.row_frequency_hz[rows]
        if self.frequency_scale == "log":
            distance = np.abs(np.log(freqs) - np.log(frequency_hz))
        else:
            distance = np.abs(freqs - frequency_hz)
        return int(rows[np.argmin(distance)])

    def column_of(self, seconds_before_event: float) -> int:
        return int(np.argmin(np.abs(self.column_time_s - seconds_before_event)))

    def band_rows(self, fmin_hz: float, fmax_hz: float) -> np.ndarray:
        """Boolean ``(n_rows,)``: rows whose centre frequency lies in ``[fmin, fmax)``."""
        return (self.row_frequency_hz >= fmin_hz) & (self.row_frequency_hz < fmax_hz)

    def covers_band(self, fmin_hz: float, fmax_hz: float) -> bool:
        """True when at least one row centre falls inside the band."""
        return bool(np.any(self.band_rows(fmin_hz, fmax_hz)))

    def cell_mask(
        self,
        fmin_hz: float,
        fmax_hz: float,
        t_start_s: float | None = None,
        t_end_s: float | None = None,
        component: str | int | None = None,
    ) -> np.ndarray:
        """Boolean ``(n_rows, n_cols)`` mask of a time-frequency box.

        ``t_start_s``/``t_end_s`` are seconds before the event (``t_start_s`` the larger);
        ``component`` restricts the rows to one panel in the stacked layout.
        """
        rows = self.band_rows(fmin_hz, fmax_hz)
        if component is not None and self.layout == "stacked":
            rows &= self.row_component == self.component_index(component)
        t_hi = self.window_s if t_start_s is None else t_start_s
        t_lo = 0.0 if t_end_s is None else t_end_s
        cols = (self.column_time_s <= t_hi) & (self.column_time_s >= t_lo)
        return rows[:, None] & cols[None, :]

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict:
        """JSON-safe description (arrays as lists)."""
        return {
            "layout": self.layout,
            "components": list(self.components),
            "row_frequency_hz": self.row_frequency_hz.tolist(),
            "row_component": self.row_component.tolist(),
            "column_time_s": self.column_time_s.tolist(),
            "frequency_range_hz": list(self.frequency_range_hz),
            "frequency_scale": self.frequency_scale,
            "window_s": self.window_s,
            "event_time": self.event_time,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "SpectrogramAxes":
        return cls(
            layout=data["layout"],
            components=tuple(data["components"]),
            row_frequency_hz=np.asarray(data["row_frequency_hz"], dtype=np.float64),
            row_component=np.asarray(data["row_component"], dtype=np.int64),
            column_time_s=np.asarray(data["column_time_s"], dtype=np.float64),
            frequency_range_hz=tuple(data["frequency_range_hz"]),
            frequency_scale=data["frequency_scale"],
            window_s=float(data["window_s"]),
            event_time=data.get("event_time"),
            extra=dict(data.get("extra") or {}),
        )

    def to_npz_arrays(self, prefix: str = "axes_") -> dict[str, np.ndarray]:
        """Plain arrays for ``np.savez`` (no pickles): numeric axes plus a JSON string."""
        return {
            f"{prefix}row_frequency_hz": self.row_frequency_hz,
            f"{prefix}row_component": self.row_component,
            f"{prefix}column_time_s": self.column_time_s,
            f"{prefix}json": np.array(json.dumps(self.to_dict())),
        }

    @classmethod
    def from_npz(cls, npz, prefix: str = "axes_") -> "SpectrogramAxes":
        return cls.from_dict(json.loads(str(npz[f"{prefix}json"])))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SpectrogramAxes):
            return NotImplemented
        return json.dumps(self.to_dict()) == json.dumps(other.to_dict())
