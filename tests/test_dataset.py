"""Class mappings, metadata CSV and sample selection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from core.errors import ConfigError, InputDataError
from geomag.dataset import (
    ClassMappings,
    SampleRecord,
    default_selection,
    load_metadata,
    select_samples,
)

USERS_MAPPINGS = {
    "magnitude_classes": ["Large", "Medium", "Moderate", "Normal"],
    "azimuth_classes": ["E", "N", "NE", "NW", "Normal", "S", "SE", "SW", "W"],
    "magnitude_to_idx": {"Large": 0, "Medium": 1, "Moderate": 2, "Normal": 3},
    "azimuth_to_idx": {"E": 0, "N": 1, "NE": 2, "NW": 3, "Normal": 4, "S": 5, "SE": 6, "SW": 7, "W": 8},
}
# another model trained with the classes in a different order
OTHER_ORDER = {
    "magnitude_classes": ["Normal", "Moderate", "Medium", "Large"],
    "azimuth_classes": ["Normal", "N", "S", "E", "W", "NE", "NW", "SE", "SW"],
}


# ---------------------------------------------------------------------------- mappings
def test_mappings_round_trip(tmp_path: Path) -> None:
    mappings = ClassMappings.from_dict(USERS_MAPPINGS, source="m.json")
    assert mappings.to_dict() == USERS_MAPPINGS
    path = mappings.save(tmp_path / "sub" / "class_mappings.json")
    assert json.loads(path.read_text()) == USERS_MAPPINGS
    assert ClassMappings.load(path) == mappings
    assert [p.name for p in path.parent.iterdir()] == ["class_mappings.json"]  # no temp files left


def test_mappings_lookup_by_name_not_order() -> None:
    a = ClassMappings.from_dict(USERS_MAPPINGS)
    b = ClassMappings.from_dict(OTHER_ORDER)
    assert a.index("magnitude", "Large") == 0
    assert b.index("magnitude", "Large") == 3
    assert a.classes("azimuth")[a.index("azimuth", "SW")] == b.classes("azimuth")[b.index("azimuth", "SW")]
    assert b.to_dict()["magnitude_to_idx"] == {"Normal": 0, "Moderate": 1, "Medium": 2, "Large": 3}


def test_mappings_from_index_only_sorted_by_index() -> None:
    data = {"magnitude_to_idx": {"Normal": 2, "Large": 0, "Medium": 1}, "azimuth_to_idx": {"S": 1, "N": 0}}
    mappings = ClassMappings.from_dict(data)
    assert mappings.magnitude_classes == ["Large", "Medium", "Normal"]
    assert mappings.azimuth_classes == ["N", "S"]


def test_mappings_unknown_head_and_class() -> None:
    mappings = ClassMappings.from_dict(USERS_MAPPINGS)
    with pytest.raises(ConfigError, match="unknown head 'depth'.*magnitude.*azimuth"):
        mappings.classes("depth")
    with pytest.raises(InputDataError, match="'Huge'.*Large"):
        mappings.index("magnitude", "Huge")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"azimuth_classes": ["N"]}, "magnitude_classes"),
        ({"magnitude_classes": [], "azimuth_classes": ["N"]}, "non-empty list"),
        ({"magnitude_classes": "Large", "azimuth_classes": ["N"]}, "non-empty list"),
        ({"magnitude_classes": ["Large", "Large"], "azimuth_classes": ["N"]}, "more than once.*Large"),
        ({"magnitude_classes": ["Large", 3], "azimuth_classes": ["N"]}, "non-empty strings"),
        (
            {"magnitude_classes": ["A", "B"], "magnitude_to_idx": {"A": 1, "B": 0}, "azimuth_classes": ["N"]},
            "disagrees",
        ),
        ({"magnitude_to_idx": {"A": 0, "B": 2}, "azimuth_classes": ["N"]}, "indices must be 0..1"),
        ({"magnitude_to_idx": {"A": "0"}, "azimuth_classes": ["N"]}, "not an integer"),
        (["Large"], "JSON object"),
    ],
)
def test_mappings_validation_errors(data: object, message: str) -> None:
    with pytest.raises(InputDataError, match=message) as info:
        ClassMappings.from_dict(data, source="models/x/class_mappings.json")
    assert "models/x/class_mappings.json" in str(info.value)


def test_mappings_load_errors(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match="not found"):
        ClassMappings.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputDataError, match="bad.json.*not valid JSON"):
        ClassMappings.load(bad)
    inconsistent = tmp_path / "inconsistent.json"
    inconsistent.write_text(json.dumps({**USERS_MAPPINGS, "azimuth_to_idx": {"N": 0}}))
    with pytest.raises(InputDataError, match="inconsistent.json.*azimuth_to_idx.*disagrees"):
        ClassMappings.load(inconsistent)


# ---------------------------------------------------------------------------- CSV
HEADER = "magnitude_class,azimuth_class,station,date,path"


def _write_dataset(root: Path, rows: list[str], header: str = HEADER, touch: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for row in rows:
        rel = row.split(",")[header.split(",").index("path")]
        if touch and rel and not Path(rel).is_absolute() and ".." not in rel:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(b"x")
    csv_path = root / "metadata.csv"
    csv_path.write_text("\n".join([header, *rows]) + "\n")
    return csv_path


@pytest.mark.parametrize("mapping_data", [USERS_MAPPINGS, OTHER_ORDER])
def test_load_metadata_happy_path(tmp_path: Path, mapping_data: dict) -> None:
    header = HEADER + ",event_time,depth_km"
    csv_path = _write_dataset(
        tmp_path,
        [
            "Large,N,MLB,2021-04-16,img/Large_MLB.png,2021-04-16T10:00:00Z,12",
            "Normal,Normal,TND,2021-05-01,img/Normal_TND.png,,",
            "Medium,SW,MLB,2021-06-02,img/Medium.png,2021-06-02T00:00:00Z,30",
        ],
        header=header,
    )
    records = load_metadata(csv_path, ClassMappings.from_dict(mapping_data))
    assert [r.name for r in records] == ["Large_MLB_2021-04-16", "Normal_TND_2021-05-01", "Medium_MLB_2021-06-02"]
    first = records[0]
    assert first.path == (tmp_path / "img" / "Large_MLB.png").resolve() and first.path.is_absolute()
    assert (first.magnitude_class, first.azimuth_class, first.station, first.date) == (
        "Large",
        "N",
        "MLB",
        "2021-04-16",
    )
    assert first.event_time == "2021-04-16T10:00:00Z"
    assert first.extra == {"depth_km": "12"}
    assert records[1].event_time is None
    assert first.true_class("azimuth") == "N"


def test_load_metadata_without_mappings_and_data_root(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _write_dataset(data, ["Anything,Q,ABC,2020-01-01,a.png"])
    csv_path = tmp_path / "meta" / "list.csv"
    csv_path.parent.mkdir()
    csv_path.write_text(HEADER + "\nAnything,Q,ABC,2020-01-01,a.png\n")
    records = load_metadata(csv_path, None, data_root=data)
    assert records[0].path == (data / "a.png").resolve()
    with pytest.raises(InputDataError, match="row 2.*not found"):
        load_metadata(csv_path, None)  # relative to the CSV's folder: no a.png there


def test_duplicate_names_get_suffixes(tmp_path: Path) -> None:
    csv_path = _write_dataset(
        tmp_path,
        [
            "Large,N,MLB,2021-04-16,a.png",
            "Large,S,MLB,2021-04-16,b.png",
            "Medium,S,MLB,2021-04-16,c.png",
            "Large,E,MLB,2021-04-16,d.png",
        ],
    )
    names = [r.name for r in load_metadata(csv_path, ClassMappings.from_dict(USERS_MAPPINGS))]
    assert names == [
        "Large_MLB_2021-04-16",
        "Large_MLB_2021-04-16__2",
        "Medium_MLB_2021-04-16",
        "Large_MLB_2021-04-16__3",
    ]


def test_csv_missing_columns(tmp_path: Path) -> None:
    header = "magnitude_class,azimuth_class,station,path"
    csv_path = _write_dataset(tmp_path, ["Large,N,MLB,a.png"], header=header)
    with pytest.raises(InputDataError, match=r"metadata.csv.*missing columns \['date'\]"):
        load_metadata(csv_path, None)


def test_csv_empty(tmp_path: Path) -> None:
    csv_path = tmp_path / "metadata.csv"
    csv_path.write_text("")
    with pytest.raises(InputDataError, match="metadata.csv.*empty CSV"):
        load_metadata(csv_path, None)
    csv_path.write_text(HEADER + "\n")
    with pytest.raises(InputDataError, match="metadata.csv.*no samples"):
        load_metadata(csv_path, None)
    with pytest.raises(InputDataError, match="not found"):
        load_metadata(tmp_path / "nope.csv", None)


def test_csv_unknown_class(tmp_path: Path) -> None:
    csv_path = _write_dataset(tmp_path, ["Large,N,MLB,2021-04-16,a.png", "Large,NNE,MLB,2021-04-17,b.png"])
    with pytest.raises(InputDataError, match=r"metadata.csv: row 3: azimuth class 'NNE'.*valid.*'SW'"):
        load_metadata(csv_path, ClassMappings.from_dict(USERS_MAPPINGS))
    csv_path = _write_dataset(tmp_path, ["Huge,N,MLB,2021-04-16,a.png"])
    with pytest.raises(InputDataError, match=r"row 2: magnitude class 'Huge'.*'Large'"):
        load_metadata(csv_path, ClassMappings.from_dict(USERS_MAPPINGS))


def test_csv_missing_file(tmp_path: Path) -> None:
    csv_path = _write_dataset(tmp_path, ["Large,N,MLB,2021-04-16,a.png", "Large,N,MLB,2021-04-17,gone.png"])
    (tmp_path / "gone.png").unlink()
    with pytest.raises(InputDataError, match=r"metadata.csv: row 3: sample file 'gone.png' not found"):
        load_metadata(csv_path, None)


def test_csv_empty_fields(tmp_path: Path) -> None:
    csv_path = _write_dataset(tmp_path, ["Large,N,,2021-04-16,a.png"])
    with pytest.raises(InputDataError, match="row 2: empty 'station'"):
        load_metadata(csv_path, None)
    csv_path = _write_dataset(tmp_path, ["Large,N,MLB,2021-04-16,"])
    with pytest.raises(InputDataError, match="row 2: empty 'path'"):
        load_metadata(csv_path, None)
    csv_path = _write_dataset(tmp_path, ["Large,N,MLB,2021-04-16,a.png,surplus"])
    with pytest.raises(InputDataError, match="row 2: more fields than columns"):
        load_metadata(csv_path, None)


def test_csv_paths_outside_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"x")
    root = tmp_path / "data"
    for rel in ("../outside.png", str(outside)):
        csv_path = _write_dataset(root, [f"Large,N,MLB,2021-04-16,{rel}"])
        with pytest.raises(InputDataError, match="row 2.*outside the data root"):
            load_metadata(csv_path, None)
        records = load_metadata(csv_path, None, allow_outside_root=True)
        assert records[0].path == outside.resolve()
    # ".." that stays inside the root is fine
    csv_path = _write_dataset(root, ["Large,N,MLB,2021-04-16,sub/../inside.png"], touch=False)
    (root / "inside.png").write_bytes(b"x")
    (root / "sub").mkdir(exist_ok=True)
    assert load_metadata(csv_path, None)[0].path == (root / "inside.png").resolve()


# ---------------------------------------------------------------------------- selection
def _records(classes: list[str]) -> list[SampleRecord]:
    return [
        SampleRecord(
            name=f"{c}_S{i}_d",
            magnitude_class=c,
            azimuth_class="N",
            station=f"S{i}",
            date="d",
            path=Path(f"/x/{i}.png"),
        )
        for i, c in enumerate(classes)
    ]


def test_default_selection_one_per_non_normal_class() -> None:
    records = _records(["Normal", "Moderate", "Large", "Large", "Moderate", "Normal"])
    users = ClassMappings.from_dict(USERS_MAPPINGS)  # Large, Medium, Moderate, Normal
    chosen = select_samples(records, None, users)
    assert [r.name for r in chosen] == ["Large_S2_d", "Moderate_S1_d"]
    other = ClassMappings.from_dict(OTHER_ORDER)  # Normal, Moderate, Medium, Large
    assert default_selection(records, other) == ["Moderate_S1_d", "Large_S2_d"]
    assert default_selection(records) == ["Moderate_S1_d", "Large_S2_d"]  # CSV order without mappings
    with pytest.raises(ConfigError, match="all 2 samples are 'Normal'"):
        select_samples(_records(["Normal", "Normal"]), None)


def test_select_single_and_list() -> None:
    records = _records(["Normal", "Moderate", "Large"])
    assert [r.name for r in select_samples(records, "Large_S2_d")] == ["Large_S2_d"]
    names = ["Large_S2_d", "Normal_S0_d"]
    assert [r.name for r in select_samples(records, names)] == names
    assert [r.name for r in select_samples(records, OmegaConf.create(names))] == names


def test_select_unknown_name() -> None:
    records = _records(["Normal", "Moderate", "Large"])
    with pytest.raises(
        ConfigError,
        match=r"unknown sample 'Large_S3_d' among 3 samples; close matches: "
        r"\['Large_S2_d'",
    ):
        select_samples(records, "Large_S3_d")
    with pytest.raises(ConfigError, match="unknown sample 'zzz'.*e.g."):
        select_samples(records, ["Large_S2_d", "zzz"])
    with pytest.raises(ConfigError, match="empty list"):
        select_samples(records, [])
    with pytest.raises(ConfigError, match="expected null"):
        select_samples(records, 5)
