"""Calibration files: validated on load with the bad field named; a lossless round trip."""

import copy
import json

import numpy as np
import pytest

from orpose.frames.calibration import (
    CameraCalibration,
    Intrinsics,
    load_calibration,
    rig_from_calibration,
    save_calibration,
)
from orpose.frames.errors import CalibrationError

GOOD = {
    "format": "or-pose-labels/calibration",
    "version": 1,
    "cameras": {
        "reg": {
            "color": {
                "width": 640,
                "height": 480,
                "fx": 538.0,
                "fy": 539.5,
                "cx": 319.5,
                "cy": 239.5,
                "distortion": [0.1, -0.2, 0.001, 0.002, 0.0],
            },
            "depth": None,
            "registered": True,
            "depth_to_color": None,
            "depth_unit_mm": 1.0,
        },
        "cal": {
            "color": {"width": 640, "height": 480, "fx": 538.0, "fy": 538.0, "cx": 320.0, "cy": 240.0},
            "depth": {"width": 512, "height": 424, "fx": 365.0, "fy": 365.0, "cx": 256.0, "cy": 212.0},
            "registered": False,
            "depth_to_color": [[1, 0, 0, 52.0], [0, 1, 0, 0.0], [0, 0, 1, 0.0], [0, 0, 0, 1]],
            "depth_unit_mm": 0.125,
        },
        "rgb_only": {
            "color": {"width": 320, "height": 240, "fx": 300.0, "fy": 300.0, "cx": 160.0, "cy": 120.0},
            "depth": None,
            "registered": False,
        },
    },
}


def write(tmp_path, document) -> str:
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(document))
    return str(path)


def test_round_trip_is_lossless(tmp_path):
    cameras = load_calibration(write(tmp_path, GOOD))
    save_calibration(cameras, tmp_path / "again.json")
    again = load_calibration(tmp_path / "again.json")
    assert again == cameras  # dataclass equality, extrinsics compared below
    np.testing.assert_array_equal(again["cal"].depth_to_color, cameras["cal"].depth_to_color)
    assert cameras["reg"].has_depth and cameras["reg"].depth_grid == cameras["reg"].color
    assert cameras["cal"].depth_grid.size == (512, 424) and cameras["cal"].depth_unit_mm == 0.125
    assert not cameras["rgb_only"].has_depth and cameras["rgb_only"].depth_grid is None


def test_intrinsics_matrix():
    k = Intrinsics(640, 480, 500.0, 510.0, 320.0, 240.0).matrix()
    np.testing.assert_array_equal(k, [[500, 0, 320], [0, 510, 240], [0, 0, 1]])


def mutate(path_keys, value):
    document = copy.deepcopy(GOOD)
    target = document
    for key in path_keys[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path_keys[-1]]
    else:
        target[path_keys[-1]] = value
    return document


@pytest.mark.parametrize(
    "keys, value, field",
    [
        (("cameras", "reg", "color", "fx"), -5.0, "cameras.reg.color.fx"),
        (("cameras", "reg", "color", "fx"), "538", "cameras.reg.color.fx"),
        (("cameras", "reg", "color", "width"), 640.5, "cameras.reg.color.width"),
        (("cameras", "reg", "color", "cx"), 900.0, "cameras.reg.color.cx"),
        (("cameras", "reg", "color", "height"), KeyError, "cameras.reg.color.height"),
        (("cameras", "reg", "color", "distortion"), [0.1, 0.2, 0.3], "cameras.reg.color.distortion"),
        (("cameras", "reg", "color", "skew"), 0.0, "cameras.reg.color.skew"),
        (("cameras", "reg", "depth_unit_mm"), 0, "cameras.reg.depth_unit_mm"),
        (("cameras", "reg", "depth_unit_mm"), KeyError, "cameras.reg.depth_unit_mm"),
        (("cameras", "reg", "registered"), "yes", "cameras.reg.registered"),
        (("cameras", "cal", "depth_to_color"), None, "cameras.cal.depth_to_color"),
        (
            ("cameras", "cal", "depth_to_color"),
            [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
            "cameras.cal.depth_to_color",
        ),
        (("cameras", "cal", "depth_to_color"), [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "cameras.cal.depth_to_color"),
        (("cameras", "reg", "depth_to_color"), np.eye(4).tolist(), "cameras.reg.depth_to_color"),
        (("version",), 2, "version"),
        (("format",), "something", "format"),
        (("cameras",), {}, "cameras"),
    ],
)
def test_bad_fields_are_named(tmp_path, keys, value, field):
    path = write(tmp_path, mutate(keys, value))
    with pytest.raises(CalibrationError) as caught:
        load_calibration(path)
    assert caught.value.field == field
    assert path in str(caught.value) and repr(field) in str(caught.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(CalibrationError, match="not found"):
        load_calibration(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(CalibrationError, match="not valid JSON"):
        load_calibration(tmp_path / "bad.json")


def test_camera_calibration_is_typed():
    cam = CameraCalibration("c", Intrinsics(4, 3, 1.0, 1.0, 1.5, 1.0), None, False)
    assert cam.depth_unit_mm == 1.0 and not cam.has_depth


def _pose(angle_deg: float, translation) -> np.ndarray:
    a = np.radians(angle_deg)
    pose = np.eye(4)
    pose[:3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
    pose[:3, 3] = translation
    return pose


def test_camera_poses_round_trip_and_make_a_rig(tmp_path):
    """`camera_to_room` is written and read back exactly; with it on every camera the file is a rig whose
    transforms are the known ones: a point in camera b's frame lands in camera a's as inv(pose_a) @ pose_b does."""
    color = Intrinsics(640, 480, 538.0, 538.0, 319.5, 239.5)
    poses = {"a": _pose(0.0, [0.0, 0.0, 0.0]), "b": _pose(90.0, [3000.0, 0.0, 1000.0])}
    cameras = {c: CameraCalibration(c, color, None, True, None, 1.0, poses[c]) for c in poses}
    save_calibration(cameras, tmp_path / "calibration.json")
    loaded = load_calibration(tmp_path / "calibration.json")
    for c in poses:
        np.testing.assert_array_equal(loaded[c].camera_to_room, poses[c])
    rig = rig_from_calibration(loaded)
    assert rig.reference == "a"
    point_in_b = np.array([[0.0, 0.0, 2000.0]])  # 2 m in front of camera b
    room = poses["b"] @ np.array([0.0, 0.0, 2000.0, 1.0])
    np.testing.assert_allclose(rig.to_room(point_in_b, "b"), room[None, :3], atol=1e-9)
    np.testing.assert_allclose(rig.move(point_in_b, "b", "a"), (np.linalg.inv(poses["a"]) @ room)[None, :3], atol=1e-9)


def test_a_rig_needs_every_camera_s_pose_and_a_pose_must_be_rigid(tmp_path):
    color = Intrinsics(640, 480, 538.0, 538.0, 319.5, 239.5)
    cameras = {
        "a": CameraCalibration("a", color, None, True, None, 1.0, np.eye(4)),
        "b": CameraCalibration("b", color, None, True, None, 1.0),
    }
    with pytest.raises(CalibrationError, match=r"cameras\.b\.camera_to_room.*missing"):
        rig_from_calibration(cameras)
    save_calibration(cameras, tmp_path / "calibration.json")
    document = json.loads((tmp_path / "calibration.json").read_text())
    assert "camera_to_room" not in document["cameras"]["b"]  # files without poses are written as before
    document["cameras"]["a"]["camera_to_room"] = (np.eye(4) * 2).tolist()
    (tmp_path / "calibration.json").write_text(json.dumps(document))
    with pytest.raises(CalibrationError, match=r"cameras\.a\.camera_to_room"):
        load_calibration(tmp_path / "calibration.json")
