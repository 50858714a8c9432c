"""Calibration files: validated on load with the bad field named; a lossless round trip."""

import copy
import json

import numpy as np
import pytest

from orpose.frames.calibration import CameraCalibration, Intrinsics, load_calibration, save_calibration
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
