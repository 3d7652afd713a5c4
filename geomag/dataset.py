"""Data-set description: class mappings, the metadata CSV and sample selection.

The users' data set is a folder of spectrogram images (or arrays) plus

* ``class_mappings.json``: ``{"magnitude_classes": [...], "azimuth_classes": [...],
  "magnitude_to_idx": {...}, "azimuth_to_idx": {...}}``. **The class order differs between
  models**, so classes are always compared by name, never by index across models;
* a metadata CSV with the columns ``magnitude_class, azimuth_class, station, date, path``
  (further columns are kept in :attr:`SampleRecord.extra`).
"""

from __future__ import annotations

import csv
import difflib
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import ConfigError, InputDataError
from core.io import atomic_write_text

log = logging.getLogger(__name__)

HEADS = ("magnitude", "azimuth")
NORMAL_CLASS = "Normal"
REQUIRED_COLUMNS = ("magnitude_class", "azimuth_class", "station", "date", "path")


# ---------------------------------------------------------------------------- class mappings
def _check_class_list(value: object, key: str, source: str | None) -> list[str]:
    if not isinstance(value, (list, tuple)) or not value:
        raise InputDataError(source, f"{key!r} must be a non-empty list of class names, got {value!r}")
    names = list(value)
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise InputDataError(source, f"{key!r} holds {name!r}; class names must be non-empty strings")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputDataError(source, f"{key!r} lists classes more than once: {duplicates}")
    return names


def _list_from_index(value: object, key: str, source: str | None) -> list[str]:
    """Class list from a ``{name: index}`` mapping whose indices must be 0..n-1."""
    if not isinstance(value, Mapping) or not value:
        raise InputDataError(source, f"{key!r} must be a non-empty {{class: index}} object, got {value!r}")
    pairs = []
    for name, index in value.items():
        if not isinstance(name, str) or not name.strip():
            raise InputDataError(source, f"{key!r} holds class {name!r}; names must be non-empty strings")
        if isinstance(index, bool) or not isinstance(index, int):
            raise InputDataError(source, f"{key!r}[{name!r}] = {index!r} is not an integer index")
        pairs.append((index, name))
    indices = sorted(i for i, _ in pairs)
    if indices != list(range(len(pairs))):
        raise InputDataError(source, f"{key!r} indices must be 0..{len(pairs) - 1} each once, got {indices}")
    return [name for _, name in sorted(pairs)]


@dataclass
class ClassMappings:
    """Class names of both heads, in the order of the model's output units."""

    magnitude_classes: list[str]
    azimuth_classes: list[str]

    def __post_init__(self) -> None:
        self.magnitude_classes = _check_class_list(self.magnitude_classes, "magnitude_classes", None)
        self.azimuth_classes = _check_class_list(self.azimuth_classes, "azimuth_classes", None)

    def classes(self, head: str) -> list[str]:
        """Class names of a head (``"magnitude"`` or ``"azimuth"``) in output order."""
        if head not in HEADS:
            raise ConfigError(f"unknown head {head!r}; valid heads are {list(HEADS)}")
        return list(self.magnitude_classes if head == "magnitude" else self.azimuth_classes)

    def index(self, head: str, name: str) -> int:
        """Output index of class ``name`` of ``head``."""
        classes = self.classes(head)
        if name not in classes:
            raise InputDataError(None, f"unknown {head} class {name!r}; valid classes are {classes}")
        return classes.index(name)

    def to_dict(self) -> dict:
        """The users' ``class_mappings.json`` format."""
        return {
            "magnitude_classes": list(self.magnitude_classes),
            "azimuth_classes": list(self.azimuth_classes),
            "magnitude_to_idx": {n: i for i, n in enumerate(self.magnitude_classes)},
            "azimuth_to_idx": {n: i for i, n in enumerate(self.azimuth_classes)},
        }

    @classmethod
    def from_dict(cls, data: Mapping, source: str | os.PathLike | None = None) -> "ClassMappings":
        """Validate a mappings object; ``source`` (a file name) is named in errors."""
        src = None if source is None else str(source)
        if not isinstance(data, Mapping):
            raise InputDataError(src, f"class mappings must be a JSON object, got {type(data).__name__}")
        lists: dict[str, list[str]] = {}
        for head in HEADS:
            list_key, idx_key = f"{head}_classes", f"{head}_to_idx"
            has_list, has_idx = data.get(list_key) is not None, data.get(idx_key) is not None
            if not has_list and not has_idx:
                raise InputDataError(
                    src, f"class mappings need {list_key!r} (or {idx_key!r}); found keys {sorted(data)}"
                )
            from_index = _list_from_index(data[idx_key], idx_key, src) if has_idx else None
            if has_list:
                names = _check_class_list(data[list_key], list_key, src)
                if from_index is not None and from_index != names:
                    raise InputDataError(src, f"{idx_key!r} {dict(data[idx_key])} disagrees with {list_key!r} {names}")
            else:
                names = from_index
            lists[head] = names
        return cls(magnitude_classes=lists["magnitude"], azimuth_classes=lists["azimuth"])

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ClassMappings":
        """Read a ``class_mappings.json`` file."""
        path = Path(path)
        if not path.is_file():
            raise InputDataError(path, "class mappings file not found")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputDataError(path, f"not valid JSON ({exc})") from None
        return cls.from_dict(data, source=path)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the users' format atomically (:func:`core.io.atomic_write_text`)."""
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")


# ---------------------------------------------------------------------------- metadata CSV
@dataclass
class SampleRecord:
    """One row of the metadata CSV.

    ``name`` is ``{magnitude_class}_{station}_{date}`` (``__2``, ``__3`` appended to repeats in
    CSV order); ``path`` is absolute and exists; ``extra`` holds the CSV's further columns.
    """

    name: str
    magnitude_class: str
    azimuth_class: str
    station: str
    date: str
    path: Path
    extra: dict = field(default_factory=dict)
    event_time: str | None = None

    def true_class(self, head: str) -> str:
        """The labelled class of a head."""
        if head not in HEADS:
            raise ConfigError(f"unknown head {head!r}; valid heads are {list(HEADS)}")
        return self.magnitude_class if head == "magnitude" else self.azimuth_class


def resolve_data_path(
    raw: str,
    root: str | os.PathLike,
    source: str | os.PathLike | None,
    what: str,
    allow_outside_root: bool = False,
) -> Path:
    """Absolute, existing file named by ``raw`` (a CSV entry) relative to the data ``root``.

    ``raw`` may not leave ``root`` through ``..`` or an absolute path unless ``allow_outside_root``
    (config ``data.allow_outside_root``). The check is on the path as written, so symbolic links
    that the data's owner placed inside the root are followed. Errors name ``source`` (the CSV)
    and start with ``what`` (e.g. ``"row 5: sample file"``).
    """
    if not raw:
        raise InputDataError(source, f"{what} is empty")
    if "\x00" in raw:
        raise InputDataError(source, f"{what} {raw!r} contains a NUL character")
    root_abs = Path(os.path.abspath(Path(root).expanduser()))
    try:
        candidate = Path(raw).expanduser()
    except RuntimeError:  # "~someone/..." of an unknown user
        raise InputDataError(source, f"{what} {raw!r}: cannot expand '~' (unknown user)") from None
    lexical = Path(os.path.normpath(candidate if candidate.is_absolute() else root_abs / candidate))
    inside = lexical.is_relative_to(root_abs) or lexical.is_relative_to(root_abs.resolve())
    if not inside and not allow_outside_root:
        raise InputDataError(
            source,
            f"{what} {raw!r} lies outside the data root {root_abs} (set data.allow_outside_root=true to permit it)",
        )
    try:
        resolved = lexical.resolve()
        found = resolved.is_file()
    except (OSError, RuntimeError) as exc:  # e.g. a symbolic-link loop
        raise InputDataError(source, f"{what} {raw!r} cannot be resolved ({exc})") from None
    if not found:
        raise InputDataError(source, f"{what} {raw!r} not found ({resolved})")
    return resolved


def load_metadata(
    csv_path: str | os.PathLike,
    mappings: ClassMappings | None,
    data_root: str | os.PathLike | None = None,
    allow_outside_root: bool = False,
) -> list[SampleRecord]:
    """Read the metadata CSV into :class:`SampleRecord` objects (CSV order).

    ``path`` entries are relative to ``data_root`` (default: the CSV's folder); paths that leave
    it (``..`` or absolute) are refused unless ``allow_outside_root``. With ``mappings`` every
    class must exist in them. Row numbers in errors count the header as row 1.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise InputDataError(csv_path, "metadata CSV not found")
    root = Path(os.path.abspath(Path(data_root).expanduser() if data_root is not None else csv_path.parent))
    if not root.is_dir():
        raise InputDataError(csv_path, f"data root {root} is not a folder")
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in (reader.fieldnames or [])]
            if not header:
                raise InputDataError(csv_path, "empty CSV (no header row)")
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise InputDataError(csv_path, f"missing columns {missing}; found {header}")
            reader.fieldnames = header
            rows = list(reader)
    except UnicodeDecodeError as exc:
        raise InputDataError(csv_path, f"not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise InputDataError(csv_path, f"malformed CSV ({exc})") from None
    if not rows:
        raise InputDataError(csv_path, "CSV has a header but no samples")

    records: list[SampleRecord] = []
    seen: dict[str, int] = {}
    for offset, row in enumerate(rows):
        number = offset + 2  # header is row 1
        if None in row:
            raise InputDataError(csv_path, f"row {number}: more fields than columns")
        values = {k: (v or "").strip() for k, v in row.items()}
        for column in REQUIRED_COLUMNS:
            if not values[column]:
                raise InputDataError(csv_path, f"row {number}: empty {column!r}")
        if mappings is not None:
            for head in HEADS:
                name, valid = values[f"{head}_class"], mappings.classes(head)
                if name not in valid:
                    raise InputDataError(
                        csv_path,
                        f"row {number}: {head} class {name!r} is not in the class mappings; valid classes are {valid}",
                    )
        path = resolve_data_path(values["path"], root, csv_path, f"row {number}: sample file", allow_outside_root)
        base = f"{values['magnitude_class']}_{values['station']}_{values['date']}"
        seen[base] = seen.get(base, 0) + 1
        name = base if seen[base] == 1 else f"{base}__{seen[base]}"
        extra = {k: v for k, v in values.items() if k not in REQUIRED_COLUMNS and k != "event_time"}
        records.append(
            SampleRecord(
                name=name,
                magnitude_class=values["magnitude_class"],
                azimuth_class=values["azimuth_class"],
                station=values["station"],
                date=values["date"],
                path=path,
                extra=extra,
                event_time=values.get("event_time") or None,
            )
        )
    log.debug("read %d samples from %s", len(records), csv_path)
    return records


# ---------------------------------------------------------------------------- sample selection
def default_selection(records: Sequence[SampleRecord], mappings: ClassMappings | None = None) -> list[str]:
    """One sample per non-Normal magnitude class: the first record of each class.

    Classes follow the mappings' order when given, else the order of first appearance in the CSV.
    """
    first: dict[str, SampleRecord] = {}
    for record in records:
        first.setdefault(record.magnitude_class, record)
    order = mappings.magnitude_classes if mappings is not None else list(first)
    return [first[c].name for c in order if c != NORMAL_CLASS and c in first]


def _as_name_list(selection: object) -> list[str] | None:
    if selection is None:
        return None
    if isinstance(selection, str):
        return [selection]
    try:  # OmegaConf ListConfig is iterable but not a list
        from omegaconf import ListConfig, OmegaConf

        if isinstance(selection, ListConfig):
            selection = OmegaConf.to_container(selection, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency of hydra
        pass
    if isinstance(selection, Iterable) and not isinstance(selection, (bytes, Mapping)):
        names = list(selection)
        bad = [n for n in names if not isinstance(n, str)]
        if bad:
            raise ConfigError(f"sample: names must be strings, got {bad}")
        if not names:
            raise ConfigError("sample: empty list; give null, a name, or a list of names")
        return names
    raise ConfigError(f"sample: expected null, a sample name or a list of names, got {selection!r}")


def select_samples(
    records: Sequence[SampleRecord],
    selection: object,
    mappings: ClassMappings | None = None,
) -> list[SampleRecord]:
    """Pick samples by name (the config key ``sample``).

    ``selection`` is ``None`` (one sample per non-Normal magnitude class, see
    :func:`default_selection`), one name (a Hydra sweep value) or a list/ListConfig of names.
    """
    if not records:
        raise ConfigError("sample: the data set holds no samples")
    by_name = {r.name: r for r in records}
    names = _as_name_list(selection)
    if names is None:
        names = default_selection(records, mappings)
        if not names:
            raise ConfigError(
                f"sample: null selects one sample per non-Normal magnitude class, but all "
                f"{len(records)} samples are {NORMAL_CLASS!r}; name samples explicitly"
            )
    chosen = []
    for name in names:
        if name not in by_name:
            close = difflib.get_close_matches(name, list(by_name), n=5, cutoff=0.5)
            hint = f"close matches: {close}" if close else f"e.g. {list(by_name)[:3]}"
            raise ConfigError(f"sample: unknown sample {name!r} among {len(records)} samples; {hint}")
        chosen.append(by_name[name])
    return chosen
