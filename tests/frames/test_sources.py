"""Frame sources: every bad-input fixture gets its own typed error, and its neighbours still load."""

import json
import shutil
from pathlib import Path

import pytest

from orpose.frames import errors
from orpose.frames.errors import FrameError, SourceError
from orpose.frames.sources import ManifestSource, MvorTreeSource, open_source

FIXTURES = Path(__file__).parents[1] / "fixtures" / "bad_frames"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


@pytest.fixture(scope="module")
def bad_source() -> ManifestSource:
    return ManifestSource(FIXTURES / "manifest.jsonl", FIXTURES / "calibration.json")


@pytest.mark.parametrize("frame_id", sorted(EXPECTED))
def test_each_fixture_gets_its_specific_error(bad_source, frame_id):
    ref = next(r for r in bad_source.refs() if r.frame_id == frame_id)
    expected = EXPECTED[frame_id]
    if expected is None:
        frame = bad_source.load(ref)
        assert frame.color_bgr.shape == (24, 32, 3) and frame.depth_raw.shape == (24, 32)
        return
    with pytest.raises(FrameError) as caught:
        bad_source.load(ref)
    error = caught.value
    assert error.reason == expected
    assert error.frame_id == frame_id
    assert frame_id in str(error) and error.path is not None and Path(error.path).name in str(error)


def test_error_classes_are_distinct_per_reason():
    reasons = [
        cls.reason
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, FrameError) and cls is not FrameError
    ]
    assert len(reasons) == len(set(reasons)) == 10


def test_iteration_rejects_bad_frames_and_keeps_their_neighbours(bad_source):
    results = list(bad_source.iter_frames())
    assert [ref.frame_id for ref, _ in results] == list(EXPECTED)  # manifest order kept
    loaded = [ref.frame_id for ref, item in results if not isinstance(item, FrameError)]
    assert loaded == ["good_a", "good_b"]
    rejected = {ref.frame_id: item.reason for ref, item in results if isinstance(item, FrameError)}
    assert rejected == {k: v for k, v in EXPECTED.items() if v is not None}


def test_manifest_csv_equals_jsonl(tmp_path):
    rows = [json.loads(line) for line in (FIXTURES / "manifest.jsonl").read_text().splitlines()]
    for name in {r["color"] for r in rows} | {r.get("depth") for r in rows if r.get("depth")}:
        if (FIXTURES / name).exists():
            shutil.copy(FIXTURES / name, tmp_path / name)
    shutil.copy(FIXTURES / "calibration.json", tmp_path / "calibration.json")
    lines = ["frame_id,color,depth,camera,timestamp"]
    lines += [f"{r['frame_id']},{r['color']},{r.get('depth', '')},cam1,{i * 0.1}" for i, r in enumerate(rows)]
    (tmp_path / "frames.csv").write_text("\n".join(lines) + "\n")
    csv_refs = ManifestSource(tmp_path / "frames.csv").refs()
    json_refs = ManifestSource(FIXTURES / "manifest.jsonl").refs()
    assert [r.frame_id for r in csv_refs] == [r.frame_id for r in json_refs]
    assert [Path(r.color_path).name for r in csv_refs] == [Path(r.color_path).name for r in json_refs]
    assert csv_refs[3].timestamp == pytest.approx(0.3)
    assert csv_refs[-2].depth_path is None  # the empty CSV cell means "no depth listed"


def test_a_manifest_may_name_each_frame_s_instant(tmp_path):
    shutil.copy(FIXTURES / "calibration.json", tmp_path / "calibration.json")
    lines = ['{"color": "a.png", "instant": "or3/000017"}', '{"color": "b.png", "instant": 18}', '{"color": "c.png"}']
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n")
    refs = ManifestSource(tmp_path / "m.jsonl").refs()
    assert [r.instant_key for r in refs] == ["or3/000017", "18", None]


@pytest.mark.parametrize(
    "lines, message",
    [
        (['{"color": "a.png"}', '{"color": "a.png"}'], "appears twice"),
        (['{"color": "a.png", "camera": "cam9"}'], "camera 'cam9' is not in"),
        (['{"depth": "a.png"}'], "field 'color' is missing"),
        (['{"color": "a.png", "colour": "b.png"}'], "unknown field 'colour'"),
        (
            [
                '{"color": "a.png"',
            ],
            "not valid JSON",
        ),
        ([], "lists no frames"),
        (['{"color": "a.png", "instant": [1, 2]}'], "field 'instant': a string or an integer is needed"),
    ],
)
def test_manifest_problems_name_the_line(tmp_path, lines, message):
    shutil.copy(FIXTURES / "calibration.json", tmp_path / "calibration.json")
    (tmp_path / "m.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(SourceError, match=message) as caught:
        ManifestSource(tmp_path / "m.jsonl").refs()
    if lines:
        assert "m.jsonl:" in str(caught.value)


def test_open_source_dispatches_on_path_kind(tmp_path):
    assert isinstance(open_source(FIXTURES / "manifest.jsonl"), ManifestSource)
    with pytest.raises(SourceError, match="neither"):
        open_source(tmp_path / "nothing_here")


def _mvor_tree(root: Path, cameras_info: dict) -> Path:
    for day, cam in (("day1", "cam1"), ("day1", "cam2"), ("day2", "cam1")):
        (root / day / cam / "color").mkdir(parents=True)
        (root / day / cam / "depth").mkdir(parents=True)
        for stem in ("000002", "000001"):
            shutil.copy(FIXTURES / "good_a_color.png", root / day / cam / "color" / f"{stem}.png")
            shutil.copy(FIXTURES / "good_a_depth.png", root / day / cam / "depth" / f"{stem}.png")
    annotation = root / "camma_mvor_2018.json"
    annotation.write_text(json.dumps({"images": [], "annotations": [], "cameras_info": cameras_info}))
    return annotation


CAM = {
    "focallength": [30.0, 30.0],
    "principalpoint": [15.5, 11.5],
    "distortion": [0.0, 0.0, 0.0, 0.0, 0.0],
    "image_size": [32, 24],
}


def test_mvor_tree_ids_are_stable_sorted_and_paired(tmp_path):
    annotation = _mvor_tree(tmp_path, {"cam1": CAM, "cam2": CAM})
    source = MvorTreeSource(tmp_path, annotation, depth_unit_mm=1.0)
    ids = [r.frame_id for r in source.refs()]
    assert ids == [
        "day1/cam1/000001",
        "day1/cam1/000002",
        "day1/cam2/000001",
        "day1/cam2/000002",
        "day2/cam1/000001",
        "day2/cam1/000002",
    ]
    assert ids == [r.frame_id for r in MvorTreeSource(tmp_path, annotation, depth_unit_mm=1.0).refs()]
    # the views of one moment share the day and the frame number: that is the frame's instant
    keys = [r.instant_key for r in source.refs()]
    assert keys == ["day1/000001", "day1/000002", "day1/000001", "day1/000002", "day2/000001", "day2/000002"]
    frame = source.load(source.refs()[0])
    assert frame.calibration.registered and frame.depth_mm().dtype.name == "float32"
    (tmp_path / "day2" / "cam1" / "depth" / "000002.png").unlink()
    with pytest.raises(errors.MissingDepthPairError, match="day2/cam1/000002"):
        source.load(source.refs()[-1])


def test_mvor_depth_unit_is_calibration_not_a_constant(tmp_path):
    annotation = _mvor_tree(tmp_path, {"cam1": CAM, "cam2": CAM})
    with pytest.raises(errors.CalibrationError, match="depth_unit_mm"):
        MvorTreeSource(tmp_path, annotation)
    source = MvorTreeSource(tmp_path, annotation, depth_unit_mm=0.5)
    frame = source.load(source.refs()[0])
    assert frame.depth_mm()[0, 0] == pytest.approx(frame.depth_raw[0, 0] * 0.5)


def test_mvor_per_day_blocks_and_missing_camera(tmp_path):
    annotation = _mvor_tree(tmp_path, {"day1": {"cam1": {**CAM, "depth_unit_mm": 1.0}}})
    with pytest.raises(SourceError, match="no entry for day1/cam2"):
        MvorTreeSource(tmp_path, annotation)


def test_a_loaded_frame_keeps_its_depth_file_bytes_and_they_decode_to_its_depth(bad_source):
    from orpose.frames.decode import decode_depth_bytes

    ref = next(r for r in bad_source.refs() if r.frame_id == "good_a")
    frame = bad_source.load(ref)
    assert frame.depth_encoded == Path(ref.depth_path).read_bytes()
    decoded = decode_depth_bytes(frame.depth_encoded, ref.depth_path, ref.frame_id, frame.calibration.depth_grid)
    assert decoded.dtype == frame.depth_raw.dtype and (decoded == frame.depth_raw).all()
    assert frame.depth_raw.any()  # a depth image of zeros would make the comparison say nothing
