"""Physical regions of a spectrogram grid (frequency band x time segment x component), each a boolean cell mask.

A :class:`RegionSet` partitions the cells ``(rows, cols, channels)`` of a grid image described by
:class:`geomag.axes.SpectrogramAxes`:

* **bands** by frequency edges in Hz (default 0.5-1, 1-3.3, 3.3-10, 10-22, 22-100 mHz, which split
  the ULF precursor band 1-10 mHz of Hayakawa et al., 1999). A row belongs to the band whose
  ``[lower, upper)`` interval holds its centre frequency; rows outside every band form the band
  ``other``, so the partition is complete. A band without a row centre is reported as not covered;
* **segments** of ``segment_hours`` (default one hour) by ``column_time_s``, seconds before the event:
  segment ``k`` holds the columns ``k * segment <= t < (k + 1) * segment`` and is named after its
  hours before the event (``"2-3 h"``); segments are listed from the earliest to the latest;
* **components** H, D, Z: image channels in the ``channels`` layout, panels (row blocks, all colour
  channels) in the ``stacked`` layout.

Every region, and every whole band, segment or component, is a :class:`Box`: a product of a row
set, a column set and a channel set.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from core.errors import ConfigError, InputDataError
from core.text import plain
from geomag.axes import SpectrogramAxes

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BAND_EDGES_HZ",
    "KINDS",
    "OTHER_BAND",
    "Box",
    "GroupInfo",
    "Region",
    "RegionConfig",
    "RegionSet",
    "build_regions",
]

DEFAULT_BAND_EDGES_HZ: tuple[float, ...] = (0.5e-3, 1.0e-3, 3.3e-3, 10.0e-3, 22.0e-3, 100.0e-3)
OTHER_BAND = "other"
KINDS = ("band", "segment", "component")
_CONFIG_KEYS = ("band_edges_hz", "band_names", "segment_hours", "components")


def _mhz(value_hz: float) -> str:
    return f"{value_hz * 1e3:g}"


def _hours(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class RegionConfig:
    """How to cut the grid: band edges in Hz, optional band names, segment length, components.

    ``components=None`` uses every component of the axes.
    """

    band_edges_hz: tuple[float, ...] = DEFAULT_BAND_EDGES_HZ
    band_names: tuple[str, ...] | None = None
    segment_hours: float = 1.0
    components: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        try:
            edges = tuple(float(v) for v in self.band_edges_hz)
        except (TypeError, ValueError):
            raise ConfigError(
                f"reliance.band_edges_hz must be a list of numbers in Hz, got {self.band_edges_hz!r}"
            ) from None
        if len(edges) < 2 or not all(math.isfinite(v) and v > 0 for v in edges):
            raise ConfigError(
                f"reliance.band_edges_hz needs at least two positive finite edges in Hz, got {list(edges)}"
            )
        if any(b <= a for a, b in zip(edges, edges[1:])):
            raise ConfigError(f"reliance.band_edges_hz must be strictly increasing, got {list(edges)}")
        object.__setattr__(self, "band_edges_hz", edges)
        if self.band_names is not None:
            names = tuple(str(n) for n in self.band_names)
            if len(names) != len(edges) - 1:
                raise ConfigError(
                    f"reliance.band_names: {len(edges) - 1} bands need {len(edges) - 1} names, got {list(names)}"
                )
            if len(set(names)) != len(names) or OTHER_BAND in names:
                raise ConfigError(f"reliance.band_names must be unique and not {OTHER_BAND!r}, got {list(names)}")
            object.__setattr__(self, "band_names", names)
        hours = self.segment_hours
        if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not math.isfinite(hours) or hours <= 0:
            raise ConfigError(f"reliance.segment_hours must be a positive number, got {hours!r}")
        if self.components is not None:
            components = tuple(str(c) for c in self.components)
            if not components or len(set(components)) != len(components):
                raise ConfigError(f"reliance.components must be a non-empty list without repeats, got {components}")
            object.__setattr__(self, "components", components)

    @classmethod
    def from_config(cls, config: RegionConfig | Mapping | None) -> RegionConfig:
        """From a plain mapping or an OmegaConf node (``conf/reliance/default.yaml``); ``None``: the defaults."""
        if config is None:
            return cls()
        if isinstance(config, RegionConfig):
            return config
        data = plain(config)
        if not isinstance(data, Mapping):
            raise ConfigError(f"reliance: expected a mapping of {', '.join(_CONFIG_KEYS)}, got {data!r}")
        unknown = sorted(set(data) - set(_CONFIG_KEYS))
        if unknown:
            raise ConfigError(f"reliance: unknown key(s) {', '.join(unknown)}; expected {', '.join(_CONFIG_KEYS)}")
        values = {k: v for k, v in data.items() if v is not None or k in ("band_names", "components")}
        for key in ("band_edges_hz", "band_names", "components"):
            if values.get(key) is not None:
                if isinstance(values[key], str) or not isinstance(values[key], Sequence):
                    raise ConfigError(f"reliance.{key} must be a list, got {values[key]!r}")
                values[key] = tuple(values[key])
        return cls(**values)

    def bands(self) -> list[tuple[str, float, float]]:
        """``(name, lower Hz, upper Hz)`` of the configured bands, lowest first."""
        edges = self.band_edges_hz
        names = self.band_names or tuple(f"{_mhz(a)}-{_mhz(b)} mHz" for a, b in zip(edges, edges[1:]))
        return [(name, a, b) for name, a, b in zip(names, edges, edges[1:])]


@dataclass(frozen=True, eq=False)
class Box:
    """Cells ``rows x cols x channels`` of a grid image (three boolean vectors)."""

    rows: np.ndarray
    cols: np.ndarray
    channels: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return int(self.rows.size), int(self.cols.size), int(self.channels.size)

    @property
    def empty(self) -> bool:
        return not (self.rows.any() and self.cols.any() and self.channels.any())

    def mask(self) -> np.ndarray:
        """Boolean ``(rows, cols, channels)`` cell mask."""
        return self.rows[:, None, None] & self.cols[None, :, None] & self.channels[None, None, :]

    def cell_mask(self) -> np.ndarray:
        """Boolean ``(rows, cols)``: the time-frequency cells the box touches in any channel."""
        return (self.rows[:, None] & self.cols[None, :]) if self.channels.any() else np.zeros(self.shape[:2], bool)

    def flat_indices(self) -> np.ndarray:
        """Indices of the box's cells in a C-order flattened ``(rows, cols, channels)`` image."""
        r, c, k = np.ix_(np.flatnonzero(self.rows), np.flatnonzero(self.cols), np.flatnonzero(self.channels))
        return np.ravel_multi_index((r, c, k), self.shape).ravel()

    def resampled(self, row_index: np.ndarray, col_index: np.ndarray, channel_index: np.ndarray) -> Box:
        """The box on another grid whose row/column/channel ``i`` sits in this grid's ``index[i]``."""
        return Box(self.rows[row_index], self.cols[col_index], self.channels[channel_index])


@dataclass(frozen=True, eq=False)
class Region:
    """One cell of the partition: a band, a time segment and a component, with its box."""

    band: str
    segment: str
    component: str
    box: Box

    @property
    def mask(self) -> np.ndarray:
        """Boolean ``(rows, cols, channels)`` cell mask of the region."""
        return self.box.mask()

    def key(self, kind: str) -> str:
        return {"band": self.band, "segment": self.segment, "component": self.component}[kind]


@dataclass(frozen=True)
class GroupInfo:
    """A band, segment or component: name, physical range (Hz, or hours before the event) and coverage."""

    kind: str
    name: str
    low: float | None
    high: float | None
    covered: bool
    size: int  # rows (bands), columns (segments) or 1 (components)

    def describe(self) -> dict:
        unit = {"band": "hz", "segment": "hours_before_event"}.get(self.kind)
        out: dict = {"name": self.name, "covered": self.covered}
        if unit is not None:
            out[f"range_{unit}"] = [self.low, self.high]
        return out


@dataclass(frozen=True, eq=False)
class RegionSet:
    """The regions of one grid (``shape = (rows, cols, channels)``) with the groups they belong to."""

    shape: tuple[int, int, int]
    layout: str
    regions: tuple[Region, ...]
    groups: dict[str, tuple[GroupInfo, ...]]
    group_boxes: dict[str, dict[str, Box]] = field(repr=False)
    row_groups: np.ndarray = field(repr=False)  # panel id of each row (neighbours only within a panel)

    def __len__(self) -> int:
        return len(self.regions)

    def masks(self) -> np.ndarray:
        """Boolean ``(R, rows, cols, channels)`` masks of all regions."""
        return np.stack([region.box.mask() for region in self.regions])

    def members(self, kind: str, name: str) -> np.ndarray:
        """Indices of the regions of one band, segment or component."""
        return np.array([i for i, r in enumerate(self.regions) if r.key(kind) == name], dtype=np.int64)

    def names(self, kind: str, covered_only: bool = True) -> list[str]:
        return [g.name for g in self.groups[kind] if g.covered or not covered_only]

    def marginal_boxes(self) -> list[tuple[str, str, Box]]:
        """``(kind, name, box)`` of every covered whole band, segment and component."""
        return [(kind, name, box) for kind in KINDS for name, box in self.group_boxes[kind].items()]

    def resampled(self, shape: Sequence[int], flip_channels: bool = False) -> RegionSet:
        """The same regions on an image of another ``(rows, cols)`` size (nearest cell centre), e.g.
        the model input a grid is resized to; ``flip_channels`` reverses the channel order (BGR)."""
        rows, cols = (int(v) for v in shape[:2])
        row_index = np.minimum(((np.arange(rows) + 0.5) * self.shape[0] / rows).astype(np.int64), self.shape[0] - 1)
        col_index = np.minimum(((np.arange(cols) + 0.5) * self.shape[1] / cols).astype(np.int64), self.shape[1] - 1)
        channel_index = np.arange(self.shape[2])[::-1] if flip_channels else np.arange(self.shape[2])

        def move(box: Box) -> Box:
            return box.resampled(row_index, col_index, channel_index)

        return replace(
            self,
            shape=(rows, cols, self.shape[2]),
            regions=tuple(replace(r, box=move(r.box)) for r in self.regions),
            group_boxes={k: {n: move(b) for n, b in boxes.items()} for k, boxes in self.group_boxes.items()},
            row_groups=self.row_groups[row_index],
        )

    def describe(self) -> dict:
        """JSON-ready description: layout, shape, bands, segments, components and region count."""
        return {
            "layout": self.layout,
            "shape": list(self.shape),
            "n_regions": len(self.regions),
            **{f"{kind}s": [g.describe() for g in self.groups[kind]] for kind in KINDS},
        }


# --------------------------------------------------------------------------- building
def _band_rows(axes: SpectrogramAxes, config: RegionConfig) -> list[tuple[GroupInfo, np.ndarray]]:
    frequency = axes.row_frequency_hz
    bands, taken = [], np.zeros(frequency.size, dtype=bool)
    for name, low, high in config.bands():
        rows = (frequency >= low) & (frequency < high)
        taken |= rows
        bands.append((GroupInfo("band", name, low, high, bool(rows.any()), int(rows.sum())), rows))
        if not rows.any():
            log.debug("band %s (%s-%s Hz) is not covered by the grid", name, low, high)
    if not taken.all():
        rest = ~taken
        bands.append((GroupInfo("band", OTHER_BAND, None, None, True, int(rest.sum())), rest))
    return bands


def _segment_cols(axes: SpectrogramAxes, config: RegionConfig) -> list[tuple[GroupInfo, np.ndarray]]:
    length = float(config.segment_hours) * 3600.0
    times = np.asarray(axes.column_time_s, dtype=np.float64)
    n_segments = max(1, math.ceil(max(float(axes.window_s), float(times.max(initial=0.0))) / length - 1e-9))
    index = np.clip(np.floor(times / length).astype(np.int64), 0, n_segments - 1)
    segments = []
    for k in reversed(range(n_segments)):  # earliest first, like the columns
        cols = index == k
        low, high = k * config.segment_hours, (k + 1) * config.segment_hours
        info = GroupInfo("segment", f"{_hours(low)}-{_hours(high)} h", low, high, bool(cols.any()), int(cols.sum()))
        segments.append((info, cols))
    return segments


def _component_boxes(
    axes: SpectrogramAxes, config: RegionConfig, n_channels: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """component -> (rows, channels) of its cells."""
    names = config.components or tuple(axes.components)
    for name in names:
        if name not in axes.components:
            raise ConfigError(
                f"reliance.components: unknown component {name!r}; the axes have {', '.join(axes.components)}"
            )
    n_rows = axes.shape[0]
    boxes = {}
    for name in names:
        index = axes.components.index(name)
        if axes.layout == "channels":
            channels = np.zeros(n_channels, dtype=bool)
            channels[index] = True
            boxes[name] = (np.ones(n_rows, dtype=bool), channels)
        else:
            boxes[name] = (axes.row_component == index, np.ones(n_channels, dtype=bool))
    return boxes


def build_regions(
    axes: SpectrogramAxes, config: RegionConfig | Mapping | None = None, n_channels: int | None = None
) -> RegionSet:
    """Partition the grid of ``axes`` into (band, segment, component) regions.

    ``n_channels``: channels of the grid image (default: one per component in the ``channels``
    layout, 3 RGB channels in the ``stacked`` layout).
    """
    config = RegionConfig.from_config(config)
    if n_channels is None:
        n_channels = len(axes.components) if axes.layout == "channels" else 3
    if axes.layout == "channels" and n_channels != len(axes.components):
        raise InputDataError(
            None, f"a channels-layout grid of components {axes.components} needs {len(axes.components)} "
                  f"channels, got {n_channels}"
        )  # fmt: skip
    bands, segments = _band_rows(axes, config), _segment_cols(axes, config)
    components = _component_boxes(axes, config, n_channels)
    regions = []
    for band, rows in bands:
        for segment, cols in segments:
            for component, (comp_rows, channels) in components.items():
                box = Box(rows & comp_rows, cols, channels)
                if band.covered and segment.covered and not box.empty:
                    regions.append(Region(band.name, segment.name, component, box))
    n_rows, n_cols = axes.shape
    all_rows, all_cols, all_channels = np.ones(n_rows, bool), np.ones(n_cols, bool), np.ones(n_channels, bool)
    group_boxes = {
        "band": {b.name: Box(rows, all_cols, all_channels) for b, rows in bands if b.covered},
        "segment": {s.name: Box(all_rows, cols, all_channels) for s, cols in segments if s.covered},
        "component": {name: Box(rows, all_cols, channels) for name, (rows, channels) in components.items()},
    }
    groups = {
        "band": tuple(b for b, _ in bands),
        "segment": tuple(s for s, _ in segments),
        "component": tuple(GroupInfo("component", name, None, None, True, 1) for name in components),
    }
    row_groups = np.zeros(n_rows, np.int64) if axes.layout == "channels" else np.asarray(axes.row_component, np.int64)
    return RegionSet((n_rows, n_cols, int(n_channels)), axes.layout, tuple(regions), groups, group_boxes, row_groups)
