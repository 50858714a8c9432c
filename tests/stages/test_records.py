"""A labelled frame's record: the hard set decided once, and the NaN rules of the 3D fields."""

import numpy as np

from orpose.frames.calibration import CameraCalibration, Intrinsics
from orpose.frames.geometry import project
from orpose.frames.sources import FrameRef
from orpose.label_store.schema import DEPTH_NONE, DEPTH_VALID
from orpose.stages.label_sets import hard_keypoints
from orpose.stages.records import labelled_record

COLOR = Intrinsics(320, 240, 300.0, 300.0, 159.5, 119.5)
REGISTERED = CameraCalibration("cam", COLOR, None, True, None, 1.0)
COLOR_ONLY = CameraCalibration("cam", COLOR, None, False, None, 1.0)


def persons(depth_z: float = 3000.0):
    """Two persons side by side at depth_z; person 1's keypoints are unsure except 3."""
    rng = np.random.default_rng(0)
    joints = [rng.normal(0, 150, (17, 3)) + [x, 0.0, depth_z] for x in (-600.0, 600.0)]
    keypoints = np.array([np.concatenate([project(j, COLOR), np.full((17, 1), 0.9)], axis=1) for j in joints])
    keypoints[1, 3:, 2] = 0.2
    boxes = np.array([[*k[:, :2].min(0), *k[:, :2].max(0)] for k in keypoints], dtype=np.float32)
    pose = np.random.default_rng(1).normal(0, 200, (2, 17, 3))
    pose[:, 0] = 0.0
    return keypoints, boxes, pose


def record(calibration, depth):
    keypoints, boxes, pose = persons()
    ref = FrameRef("f", "cam", "/x/f.png", None if depth is None else "/x/d.png")
    hard_mask, hard_valid = hard_keypoints(keypoints, 0.35, 4)
    return labelled_record(
        ref,
        calibration,
        depth,
        boxes=boxes,
        scores=np.array([0.9, 0.8]),
        mask_rle=["", ""],
        keypoints=keypoints,
        spread=np.zeros((2, 17)),
        hard_mask=hard_mask,
        hard_valid=hard_valid,
        pose_soft=pose,
        pose_hard=pose + 5.0,
    )


def test_hard_poses_are_nan_exactly_where_the_skeleton_is_not_in_the_hard_set():
    r = record(REGISTERED, np.full((240, 320), 3000.0, np.float32))
    p = r.persons
    np.testing.assert_array_equal(p["hard_valid"], [True, False])  # person 1: 3 hard keypoints < 4
    assert p["hard_mask"][0].all() and not p["hard_mask"][1].any()  # hard keypoints only in a kept skeleton
    assert np.isfinite(p["pose3d_hard"][0]).all() and np.isnan(p["pose3d_hard"][1]).all()
    assert np.isfinite(p["pose3d_soft"]).all()


def test_camera_frame_poses_are_nan_without_depth_and_without_a_torso_reading():
    with_depth = record(REGISTERED, np.full((240, 320), 3000.0, np.float32)).persons
    assert np.isfinite(with_depth["pose3d_camera"]).all() and (with_depth["depth_flag"] == DEPTH_VALID).all()
    color_only = record(COLOR_ONLY, None).persons
    assert np.isnan(color_only["pose3d_camera"]).all() and np.isnan(color_only["depth_consistency"]).all()
    assert (color_only["depth_flag"] == DEPTH_NONE).all() and np.isnan(color_only["depth_keypoints"]).all()
    # person 0's torso lands in a hole, person 1's does not: only person 0 has no anchor
    keypoints, _, _ = persons()
    depth = np.full((240, 320), 3000.0, np.float32)
    for u, v in keypoints[0, [5, 6, 11, 12], :2]:
        depth[max(int(v) - 6, 0) : int(v) + 7, max(int(u) - 6, 0) : int(u) + 7] = 0.0
    holes = record(REGISTERED, depth).persons
    assert np.isnan(holes["pose3d_camera"][0]).all() and np.isfinite(holes["pose3d_camera"][1]).all()
