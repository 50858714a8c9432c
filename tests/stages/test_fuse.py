"""FuseStage (issue 44): one shard's records fused instant by instant. Known answers on a synthetic rig: exact
projections come back as the room points (and in each view's camera frame), a rejected view leaves the others
fused, a person seen once keeps the fill values, an instant's frames are never fused with another instant's, and
a camera without a pose is refused naming it."""

import numpy as np
import pytest

from orpose.configs.schema import load_teacher_config
from orpose.frames.calibration import CameraCalibration
from orpose.frames.errors import CalibrationError
from orpose.frames.geometry import apply_rigid, invert_rigid
from orpose.label_store.schema import STATUS_LABELLED, STATUS_REJECTED
from orpose.label_store.shard import FrameRecord
from orpose.stages.context import StageContext
from orpose.stages.fuse import FuseStage
from orpose.stages.rows import objects
from tests.fusion.test_triangulation import observe, rig, skeleton

CAMERAS = rig(3)


def calibrations(poses: bool = True) -> dict[str, CameraCalibration]:
    return {
        f"cam{k}": CameraCalibration(
            f"cam{k}", c.intrinsics, None, False, camera_to_room=invert_rigid(c.world_to_camera) if poses else None
        )
        for k, c in enumerate(CAMERAS)
    }


def record(camera: int, instant: int, people: list[np.ndarray], status: int = STATUS_LABELLED) -> FrameRecord:
    """A frame of camera `camera` at `instant` whose teacher found `people` (room points) exactly."""
    frame = {"frame_id": f"cam{camera}/{instant}", "camera_id": f"cam{camera}", "status": status, "instant": instant}
    if status != STATUS_LABELLED:
        return FrameRecord(frame)
    uv = [observe(points, [CAMERAS[camera]])[0] for points in people]
    keypoints = np.array([np.concatenate([p, np.ones((17, 1))], axis=1) for p in uv], np.float32).reshape(-1, 17, 3)
    return FrameRecord(frame, {"box": np.zeros((len(people), 4), np.float32), "keypoints_2d": keypoints})


def stage() -> FuseStage:
    config = load_teacher_config("tiny", {"fusion.enabled": True})
    return FuseStage.from_config(StageContext(config, weights_dir=None, calibrations=calibrations()))


def run(records: list[FrameRecord]) -> list[FrameRecord]:
    out = stage()({"frame_id": objects([r.frame["frame_id"] for r in records]), "record": objects(records)})
    assert len(out["seconds_fuse"]) == len(records)
    return list(out["record"])


def test_exact_views_of_one_instant_fuse_to_the_room_points_in_every_view():
    a, b = skeleton(0) + [-500, 0, 0], skeleton(1) + [600, 200, 0]
    records = run([record(0, 5, [a, b]), record(1, 5, [b, a]), record(2, 5, [a])])
    for camera, rec in enumerate(records):
        persons = rec.persons
        for p, points in enumerate([[a, b], [b, a], [a]][camera]):
            np.testing.assert_allclose(persons["pose3d_room"][p], points, atol=0.05)  # float32 mm
            np.testing.assert_allclose(
                persons["pose3d_room_camera"][p], apply_rigid(CAMERAS[camera].world_to_camera, points), atol=0.05
            )
            assert persons["pose3d_room_hard"][p].all() and np.nanmax(persons["pose3d_room_error_px"][p]) < 0.01
    assert records[0].persons["pose3d_room_views"][0].tolist() == [3] * 17  # a: three views
    assert records[0].persons["pose3d_room_views"][1].tolist() == [2] * 17  # b: two
    group_a = records[0].persons["fusion_group"][0]
    assert records[1].persons["fusion_group"][1] == group_a == records[2].persons["fusion_group"][0] >= 0
    assert records[0].persons["fusion_group"][1] == records[1].persons["fusion_group"][0] != group_a


def test_a_rejected_view_leaves_the_others_fused_and_a_person_seen_once_keeps_the_fill():
    a, alone = skeleton(0), skeleton(3) + [0, -900, 0]
    records = run([record(0, 1, [a, alone]), record(1, 1, [], STATUS_REJECTED), record(2, 1, [a])])
    persons = records[0].persons
    np.testing.assert_allclose(persons["pose3d_room"][0], a, atol=0.05)
    assert persons["pose3d_room_views"][0].tolist() == [2] * 17
    assert np.isnan(persons["pose3d_room"][1]).all() and persons["fusion_group"][1] == -1
    assert persons["pose3d_room_views"][1].tolist() == [0] * 17 and not persons["pose3d_room_hard"][1].any()
    assert records[1].num_persons == 0


def test_frames_of_different_instants_are_never_fused_together():
    a = skeleton(0)
    records = run([record(0, 1, [a]), record(1, 2, [a]), record(2, 3, [a])])  # one view an instant
    for rec in records:
        assert np.isnan(rec.persons["pose3d_room"]).all() and (rec.persons["fusion_group"] == -1).all()


def test_a_camera_without_a_pose_is_refused_naming_it():
    config = load_teacher_config("tiny", {"fusion.enabled": True})
    cameras = calibrations()
    cameras["cam1"] = calibrations(poses=False)["cam1"]
    with pytest.raises(CalibrationError, match=r"cameras\.cam1\.camera_to_room"):
        FuseStage.from_config(StageContext(config, weights_dir=None, calibrations=cameras))
