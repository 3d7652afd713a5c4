"""Reader for INTERMAGNET ImagCDF files (CDF 3, CDF_TIME_TT2000 time stamps, 1-second or 1-minute data).

Format reference: INTERMAGNET Technical Reference Manual, appendix "ImagCDF" (format versions 1.2 and 1.3).
Global attributes ``IagaCode`` and ``ElementsRecorded`` (``HDZF``, ``XYZS``, ``HEZS``, ...) are required;
``Latitude``, ``Longitude``, ``Elevation`` (99999 = unknown), ``VectorSensOrient`` and ``StationK9`` are kept
when present. Each element ``E`` is the variable ``GeomagneticFieldE`` with the variable attributes
``DEPEND_0`` (its time variable; without it ``GeomagneticVectorTimes`` / ``GeomagneticScalarTimes``,
``DataTimes`` or ``GeomagneticFieldTimes``), ``FILLVAL``, ``UNITS`` and ``VALIDMIN``/``VALIDMAX``.

Like the IAGA-2002 reader, components keep the file's element letters and order; ``metadata["units"]`` holds
each variable's ``UNITS`` (ImagCDF angles are in degrees, IAGA-2002 angles in minutes of arc) and
``metadata["sensor_orientation"]`` the ``VectorSensOrient`` code. Fill values, NaN and values outside
``VALIDMIN``..``VALIDMAX`` (without those attributes: at or above 88888) become NaN; missing time stamps become
NaN rows on the regular grid (with a warning). The reader never resamples: a vector cadence other than
``expected_interval_s`` is refused, and an element on another cadence (e.g. 1-minute scalar data in a 1-second
file) is left out with a warning. A leap second (23:59:60), which UTC ``datetime64`` cannot hold, is dropped.
With ``time_range=(start, end)`` only the records with ``start <= t < end`` are read, so a window of a
multi-day file costs the window, not the file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputDataError
from geomag.cdf import cdf_call, open_cdf
from geomag.preprocess import as_datetime64
from geomag.readers import check_file, warn_data
from geomag.timeseries import GeomagSeries

logger = logging.getLogger(__name__)

#: Time variable names the format defines, tried in this order when an element has no ``DEPEND_0``.
VECTOR_TIMES = ("GeomagneticVectorTimes", "DataTimes", "GeomagneticFieldTimes")
SCALAR_TIMES = ("GeomagneticScalarTimes", "DataTimes", "GeomagneticFieldTimes")
SCALAR_ELEMENTS = frozenset("SG")
ANGLE_ELEMENTS = frozenset("DI")
CDF_TIME_TT2000 = 33
NUMERIC_TYPES = frozenset({1, 2, 4, 8, 11, 12, 14, 21, 22, 41, 44, 45})
#: Without VALIDMIN/VALIDMAX, values at or above this are missing markers (99999, 88888), as in IAGA-2002.
MISSING_THRESHOLD = 88888.0
UNKNOWN_ELEVATION = 99999.0
#: TT2000 stamps farther than this from 2000-01-01 (about 200 years) are not times (fill values, damage).
TT2000_LIMIT_NS = 200 * 365 * 86400 * 10**9
#: A time series may have gaps, but a span this many times longer than its records is corrupt.
MAX_GRID_EXPANSION = 10


@dataclass
class _Timeline:
    """One time variable: UTC milliseconds of every record, which records are kept, and the cadence."""

    name: str
    stamps_ms: np.ndarray
    kept: np.ndarray
    step_ms: int | None


@dataclass
class _Grid:
    """The regular output grid: first stamp (ms), interval (ms), length, and the vector records it came from."""

    start_ms: int
    step_ms: int
    size: int
    first: int
    last: int


# --------------------------------------------------------------------------- attributes
def _scalar(value: Any) -> Any:
    """An attribute entry as one Python value (cdflib gives numbers as 1-element arrays)."""
    if isinstance(value, (list, tuple)):
        value = value[0] if len(value) else None
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size else None
    return value.item() if isinstance(value, np.generic) else value


def _text(attributes: dict, name: str) -> str | None:
    value = _scalar(attributes.get(name))
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None


def _number(attributes: dict, name: str) -> float | None:
    value = _scalar(attributes.get(name))
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _elements(path: Path, attributes: dict, variables: set[str]) -> list[str]:
    """Element letters from ``ElementsRecorded``, each with its ``GeomagneticField<E>`` variable."""
    recorded = _text(attributes, "ElementsRecorded")
    if recorded is None:
        raise InputDataError(path, "missing global attribute 'ElementsRecorded' (not an ImagCDF file?)")
    letters = "".join(recorded.split()).upper()
    if not letters.isalpha():
        raise InputDataError(path, f"ElementsRecorded {recorded!r:.40} is not a string of element letters")
    if len(set(letters)) != len(letters):
        raise InputDataError(path, f"ElementsRecorded {letters!r} repeats an element")
    absent = [f"GeomagneticField{e}" for e in letters if f"GeomagneticField{e}" not in variables]
    if absent:
        raise InputDataError(path, f"ElementsRecorded is {letters!r} but the file has no variable {absent[0]}")
    return list(letters)


def _time_variable(path: Path, element: str, attributes: dict, variables: set[str]) -> str:
    """The element's time variable: ``DEPEND_0``, else the first name the format defines that exists."""
    depend = _text(attributes, "DEPEND_0")
    if depend is not None:
        if depend not in variables:
            raise InputDataError(
                path, f"GeomagneticField{element}: DEPEND_0 names {depend!r}, which is not a variable of the file"
            )
        return depend
    for name in SCALAR_TIMES if element in SCALAR_ELEMENTS else VECTOR_TIMES:
        if name in variables:
            return name
    raise InputDataError(
        path,
        f"GeomagneticField{element} has no time variable (no DEPEND_0 and none of "
        f"{', '.join(VECTOR_TIMES[:2])}, GeomagneticScalarTimes)",
    )


# --------------------------------------------------------------------------- time stamps
def _checked_variable(path: Path, cdf: Any, name: str, types: frozenset[int]) -> int:
    """Number of records of a scalar, non-sparse variable of one of ``types``."""
    info = cdf_call(path, f"variable {name}", cdf.varinq, name)
    if info.Data_Type not in types:
        expected = "CDF_TIME_TT2000" if types == {CDF_TIME_TT2000} else "numbers"
        raise InputDataError(path, f"variable {name} is {info.Data_Type_Description}, expected {expected}")
    if info.Num_Dims != 0 or not info.Rec_Vary or str(info.Sparse).lower() != "no_sparse":
        raise InputDataError(
            path,
            f"variable {name} is not a plain time series (dimensions {info.Dim_Sizes}, "
            f"record variance {info.Rec_Vary}, sparse records {info.Sparse})",
        )
    return int(info.Last_Rec) + 1


def _utc_ms(tt2000: np.ndarray) -> np.ndarray:
    """UTC milliseconds since 1970 of TT2000 stamps (leap seconds map onto the following second)."""
    import cdflib

    def offset(value: np.int64) -> int:
        utc = cdflib.cdfepoch.to_datetime(np.array([value], dtype=np.int64)).astype("datetime64[ns]")
        return int(utc.astype(np.int64)[0]) - int(value)

    start, end = offset(tt2000[0]), offset(tt2000[-1])
    if start == end:  # no leap second in between: one constant offset
        utc_ns = tt2000 + np.int64(start)
    else:
        utc_ns = cdflib.cdfepoch.to_datetime(tt2000).astype("datetime64[ns]").astype(np.int64)
    return np.floor_divide(utc_ns, 1_000_000)


def _timeline(path: Path, cdf: Any, name: str) -> _Timeline:
    """Read, check and convert one time variable (all its records: 8 bytes each)."""
    n = _checked_variable(path, cdf, name, frozenset({CDF_TIME_TT2000}))
    if n == 0:
        raise InputDataError(path, f"time variable {name} has no records")
    tt2000 = np.asarray(cdf_call(path, f"time variable {name}", cdf.varget, name), dtype=np.int64).ravel()
    if tt2000.size != n:
        raise InputDataError(path, f"time variable {name} holds {tt2000.size} of its {n} records")
    wild = np.flatnonzero(np.abs(tt2000) > TT2000_LIMIT_NS)
    if wild.size:
        raise InputDataError(path, f"{name} record {wild[0]}: time stamp {tt2000[wild[0]]} is not a date (fill value?)")
    going_back = np.flatnonzero(np.diff(tt2000) <= 0)
    if going_back.size:
        i = int(going_back[0]) + 1
        raise InputDataError(
            path, f"{name} record {i}: time stamp is not after record {i - 1} (time stamps must increase)"
        )
    stamps = _utc_ms(tt2000)
    kept = np.ones(n, dtype=bool)
    kept[:-1] = np.diff(stamps) > 0  # a leap second lands on the next second's UTC stamp
    if not kept.all():
        warn_data(path, f"{name}: {int((~kept).sum())} leap-second record(s) (23:59:60) dropped")
    diffs = np.diff(stamps[kept])
    if diffs.size == 0:
        return _Timeline(name, stamps, kept, None)
    steps, counts = np.unique(diffs, return_counts=True)
    step = int(steps[np.argmax(counts)])
    odd = np.flatnonzero(diffs % step)
    if odd.size:
        record = int(np.flatnonzero(kept)[odd[0] + 1])
        raise InputDataError(
            path,
            f"{name} record {record}: irregular time stamp "
            f"{np.datetime64(int(stamps[record]), 'ms')} (interval {step / 1000:g} s)",
        )
    return _Timeline(name, stamps, kept, step)


def _grid(path: Path, vector: _Timeline, expected_interval_s: float | None, time_range: tuple | None) -> _Grid:
    """The output grid: the vector records inside ``time_range`` on the vector cadence."""
    step = vector.step_ms
    if step is None:
        if expected_interval_s is None:
            raise InputDataError(path, f"{vector.name} has one record: sampling interval unknown")
        step = int(round(float(expected_interval_s) * 1000))
    if expected_interval_s is not None and abs(step / 1000 - float(expected_interval_s)) > 1e-6:
        raise InputDataError(
            path,
            f"sampling interval is {step / 1000:g} s but {float(expected_interval_s):g} s "
            "is expected (files are never resampled)",
        )
    stamps, first, last = vector.stamps_ms, 0, vector.stamps_ms.size - 1
    if time_range is not None:
        start, end = (int(as_datetime64(t, "time range").astype(np.int64)) for t in time_range)
        first, last = int(np.searchsorted(stamps, start)), int(np.searchsorted(stamps, end)) - 1
        if last < first:
            span = f"{np.datetime64(int(stamps[0]), 'ms')} to {np.datetime64(int(stamps[-1]), 'ms')}"
            raise InputDataError(
                path,
                f"data ({span}) do not overlap the requested time range "
                f"{np.datetime64(start, 'ms')} to {np.datetime64(end, 'ms')}",
            )
    size = int((stamps[last] - stamps[first]) // step) + 1
    records = int(vector.kept[first : last + 1].sum())
    if size > MAX_GRID_EXPANSION * records:
        raise InputDataError(
            path, f"time stamps span {size} intervals for only {records} records (corrupt time stamps?)"
        )
    return _Grid(int(stamps[first]), step, size, first, last)


# --------------------------------------------------------------------------- values
def _clean(values: np.ndarray, attributes: dict) -> tuple[np.ndarray, int]:
    """Fill values, NaN/inf and values outside VALIDMIN..VALIDMAX -> NaN; returns the values and their count."""
    values = np.array(values, dtype=np.float64).ravel()
    with np.errstate(invalid="ignore", over="ignore"):
        bad = ~np.isfinite(values)
        fill = _number(attributes, "FILLVAL")
        if fill is not None:
            bad |= values == fill
        low, high = _number(attributes, "VALIDMIN"), _number(attributes, "VALIDMAX")
        if low is None and high is None:
            bad |= np.abs(values) >= MISSING_THRESHOLD
        if low is not None:
            bad |= values < low
        if high is not None:
            bad |= values > high
    values[bad] = np.nan
    return values, int(bad.sum())


def _on_grid(
    path: Path, cdf: Any, element: str, timeline: _Timeline, attributes: dict, grid: _Grid
) -> tuple[np.ndarray | None, int, str | None]:
    """``(values on the grid, missing markers, None)``, or ``(None, 0, reason)`` for an element left out."""
    variable = f"GeomagneticField{element}"
    n = _checked_variable(path, cdf, variable, NUMERIC_TYPES)
    if n != timeline.stamps_ms.size:
        raise InputDataError(
            path, f"{variable} has {n} records but its time variable {timeline.name} has {timeline.stamps_ms.size}"
        )
    if timeline.step_ms not in (None, grid.step_ms):
        return None, 0, f"{timeline.step_ms / 1000:g}-s cadence, vector data {grid.step_ms / 1000:g} s"
    stamps = timeline.stamps_ms
    grid_end = grid.start_ms + (grid.size - 1) * grid.step_ms
    first, last = int(np.searchsorted(stamps, grid.start_ms)), int(np.searchsorted(stamps, grid_end, "right")) - 1
    out = np.full(grid.size, np.nan)
    if last < first:
        return out, 0, None
    offsets = stamps[first : last + 1] - grid.start_ms
    if np.any(offsets % grid.step_ms):
        return None, 0, f"time stamps of {timeline.name} are off the vector time grid"
    raw = cdf_call(path, variable, cdf.varget, variable, startrec=first, endrec=last)
    values, missing = _clean(np.asarray(raw), attributes)
    if values.size != last - first + 1:
        raise InputDataError(path, f"{variable} holds {values.size} values for records {first}..{last}")
    kept = timeline.kept[first : last + 1]
    out[offsets[kept] // grid.step_ms] = values[kept]
    return out, missing, None


# --------------------------------------------------------------------------- the reader
def _metadata(attributes: dict, elements: dict, grid: _Grid, vector: _Timeline, time_range: tuple | None) -> dict:
    """JSON-serialisable header facts; ``elements`` maps each read element to its facts."""
    metadata: dict = {
        "format": "ImagCDF",
        "format_version": _text(attributes, "FormatVersion"),
        "reported": "".join(elements),
        "elements_recorded": _text(attributes, "ElementsRecorded"),
        "variables": {e: f"GeomagneticField{e}" for e in elements},
        "time_variables": {e: facts["time_variable"] for e, facts in elements.items()},
        "units": {e: facts["units"] for e, facts in elements.items()},
        "missing_marker_counts": {e: facts["missing"] for e, facts in elements.items()},
        "missing_time_rows": grid.size - int(vector.kept[grid.first : grid.last + 1].sum()),
        "records": {"first": grid.first, "last": grid.last, "total": int(vector.stamps_ms.size)},
    }
    if time_range is not None:
        metadata["time_range"] = [str(as_datetime64(t, "time range")) for t in time_range]
    for key, name in (
        ("sensor_orientation", "VectorSensOrient"),
        ("station_name", "ObservatoryName"),
        ("source_of_data", "Institution"),
        ("publication_level", "PublicationLevel"),
        ("standard_level", "StandardLevel"),
        ("terms_of_use", "TermsOfUse"),
    ):
        if _text(attributes, name):
            metadata[key] = _text(attributes, name)
    k9 = _number(attributes, "StationK9")
    if k9 is not None or _text(attributes, "StationK9"):
        metadata["station_k9"] = k9 if k9 is not None else _text(attributes, "StationK9")
    return metadata


def _read_elements(
    path: Path, cdf: Any, letters: list[str], expected_interval_s: float | None, time_range: tuple | None
) -> tuple[dict, dict, _Grid, _Timeline]:
    """Components on the grid, facts per element, the grid and the vector time line."""
    attributes = {
        e: cdf_call(path, f"attributes of GeomagneticField{e}", cdf.varattsget, f"GeomagneticField{e}") for e in letters
    }
    variables = _variable_names(path, cdf)
    time_names = {e: _time_variable(path, e, attributes[e], variables) for e in letters}
    timelines = {name: _timeline(path, cdf, name) for name in dict.fromkeys(time_names.values())}
    vector = timelines[time_names[letters[0]]]
    grid = _grid(path, vector, expected_interval_s, time_range)
    components, facts = {}, {}
    for e in letters:
        values, missing, reason = _on_grid(path, cdf, e, timelines[time_names[e]], attributes[e], grid)
        if values is None:
            warn_data(path, f"element {e} left out: {reason}")
            continue
        components[e] = values
        units = _text(attributes[e], "UNITS") or ("Degrees of arc" if e in ANGLE_ELEMENTS else "nT")
        facts[e] = {"time_variable": time_names[e], "units": units, "missing": missing}
    return components, facts, grid, vector


def _variable_names(path: Path, cdf: Any) -> set[str]:
    info = cdf_call(path, "variable list", cdf.cdf_info)
    return set(info.zVariables) | set(info.rVariables)


def read_imagcdf(
    path: str | PathLike, expected_interval_s: float | None = 1.0, time_range: tuple | None = None
) -> GeomagSeries:
    """Read an ImagCDF file into a :class:`GeomagSeries` (components named by ``ElementsRecorded``).

    Args:
        path: the ``.cdf`` file (also whole-file compressed, or gzip-compressed as ``.cdf.gz``).
        expected_interval_s: required sampling interval of the vector data; another interval raises
            :class:`InputDataError` (the data are never resampled). ``None`` accepts any.
        time_range: ``(start, end)`` (``datetime64`` or ISO strings, UTC): read only the records with
            ``start <= t < end``; :class:`InputDataError` when the file holds none.
    """
    p = check_file(path)
    with open_cdf(p) as cdf:
        attributes = cdf_call(p, "global attributes", cdf.globalattsget)
        station = _text(attributes, "IagaCode")
        if station is None:
            raise InputDataError(p, "missing global attribute 'IagaCode' (not an ImagCDF file?)")
        letters = _elements(p, attributes, _variable_names(p, cdf))
        components, facts, grid, vector = _read_elements(p, cdf, letters, expected_interval_s, time_range)
    if not components:
        raise InputDataError(p, f"no element of {''.join(letters)!r} is on the vector time grid")
    metadata = _metadata(attributes, facts, grid, vector, time_range)
    if metadata["missing_time_rows"]:
        warn_data(p, f"{metadata['missing_time_rows']} missing time rows filled with NaN (gaps in the time stamps)")
    elevation = _number(attributes, "Elevation")
    times = np.datetime64(grid.start_ms, "ms") + (np.arange(grid.size) * grid.step_ms).astype("timedelta64[ms]")
    logger.debug("%s: %d samples of %s at %g s", p, grid.size, metadata["reported"], grid.step_ms / 1000)
    return GeomagSeries(
        times=times,
        components=components,
        station=station.upper(),
        sampling_interval_s=grid.step_ms / 1000,
        latitude=_number(attributes, "Latitude"),
        longitude=_number(attributes, "Longitude"),
        elevation=None if elevation is None or elevation >= UNKNOWN_ELEVATION else elevation,
        source=str(p),
        metadata=metadata,
    )
