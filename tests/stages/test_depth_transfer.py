"""Color-to-depth transfer and camera-frame anchoring against the generator's ground truth."""

import json

import numpy as np
import pytest

from orpose.frames.calibration import CameraCalibration, Intrinsics
from orpose.frames.geometry import apply_rigid, backproject, invert_rigid, project
from orpose.frames.sources import ManifestSource
from orpose.joints import coco_to_h36m_positions
from orpose.label_store.schema import DEPTH_HOLE, DEPTH_NONE, DEPTH_OUTSIDE, DEPTH_VALID
from orpose.stages.depth_transfer import anchor_poses, depth_points_in_color_frame, transfer_keypoints
from orpose.stages.label_sets import hard_keypoints
from orpose.synth.body import JOINT_RADIUS_MM
from orpose.synth.generate import VISIBILITY_SLACK_MM


def test_hard_set_rule_known_answer():
    keypoints = np.zeros((3, 17, 3))
    keypoints[0, :5, 2] = 0.9  # 5 confident keypoints: kept
    keypoints[1, :4, 2] = 0.36  # exactly 4 above 0.35: kept
    keypoints[2, :3, 2] = 0.9
    keypoints[2, 3:, 2] = 0.35  # 3 confident, the rest exactly at the threshold (not above): dropped
    mask, valid = hard_keypoints(keypoints, 0.35, 4)
    np.testing.assert_array_equal(valid, [True, True, False])
    assert mask[0].sum() == 5 and mask[1].sum() == 4 and not mask[2].any()


def test_registered_scaled_grid_known_answer():
    color = Intrinsics(640, 480, 500.0, 500.0, 319.5, 239.5)
    calib = CameraCalibration("c", color, Intrinsics(320, 240, 250.0, 250.0, 159.25, 119.25), True, None, 1.0)
    depth = np.full((240, 320), 2000.0)
    depth[100:110, 100:110] = 0  # a hole
    labels = transfer_keypoints(
        np.array([[0.0, 0.0], [639.0, 479.0], [210.0, 210.0], [-5.0, 10.0]]), depth, calib, radius_px=2
    )
    np.testing.assert_allclose(labels.uv[:2], [[-0.25, -0.25], [319.25, 239.25]])  # centres scale about pixel edges
    np.testing.assert_array_equal(labels.flag, [DEPTH_VALID, DEPTH_VALID, DEPTH_HOLE, DEPTH_OUTSIDE])
    assert labels.surface[1, 2] == pytest.approx(2000.0)
    none = transfer_keypoints(np.zeros((2, 2)), None, calib)
    np.testing.assert_array_equal(none.flag, [DEPTH_NONE, DEPTH_NONE])


def test_depth_points_in_color_frame_known_answers():
    color = Intrinsics(640, 480, 500.0, 500.0, 319.5, 239.5)
    registered = CameraCalibration("c", color, Intrinsics(320, 240, 250.0, 250.0, 159.25, 119.25), True, None, 1.0)
    depth = np.zeros((240, 320))
    depth[0, 0] = 1000.0  # the depth pixel covering color pixels 0..1: its centre is color pixel 0.5
    depth[120, 160] = 2000.0
    points = depth_points_in_color_frame(depth, registered)
    np.testing.assert_allclose(points, [[(0.5 - 319.5) / 500 * 1000, (0.5 - 239.5) / 500 * 1000, 1000], [4, 4, 2000]])
    assert len(depth_points_in_color_frame(depth, registered, stride=2)) == 2  # rows and columns 0, 120 / 0, 160
    assert len(depth_points_in_color_frame(depth, registered, stride=7)) == 1  # 120 is not a multiple of 7

    grid = Intrinsics(32, 24, 30.0, 30.0, 15.5, 11.5)
    depth_to_color = np.eye(4)
    depth_to_color[0, 3] = 40.0
    rig = CameraCalibration("rig", Intrinsics(64, 48, 60.0, 60.0, 31.5, 23.5), grid, False, depth_to_color, 1.0)
    depth = np.zeros((24, 32))
    depth[11, 15] = 1500.0
    np.testing.assert_allclose(
        depth_points_in_color_frame(depth, rig), [[-0.5 / 30 * 1500 + 40, -0.5 / 30 * 1500, 1500]]
    )


@pytest.fixture(scope="module")
def scenes(synth_dir):
    gt = json.loads((synth_dir / "annotations.json").read_text())
    registered = ManifestSource(synth_dir / "manifest.jsonl")
    calibrated = ManifestSource(synth_dir / "calibrated_rig" / "manifest.jsonl")
    reg = {r.frame_id: registered.load(r) for r in registered.refs()}
    cal = {r.frame_id: calibrated.load(r) for r in calibrated.refs()}
    images = {im["id"]: im["frame_id"] for im in gt["images"]}
    people = []
    for ann in gt["annotations"]:
        kp = np.array(ann["keypoints"], dtype=float).reshape(17, 3)
        people.append(
            (
                reg[images[ann["image_id"]]],
                cal[images[ann["image_id"]]],
                kp,
                np.array(ann["keypoints_3d"]).reshape(17, 3),
            )
        )
    return people


def test_registered_transfer_finds_the_body_surface(scenes):
    own, filled = [], []
    for frame, _, kp, joints in scenes:
        visible = kp[:, 2] == 2
        depth = frame.depth_mm()
        labels = transfer_keypoints(kp[visible, :2], depth, frame.calibration)
        np.testing.assert_allclose(labels.uv, kp[visible, :2])
        ok = labels.flag == DEPTH_VALID
        near = (
            np.abs(labels.surface[ok, 2] - joints[visible][ok, 2]) <= JOINT_RADIUS_MM[visible][ok] + VISIBILITY_SLACK_MM
        )
        pixel = np.round(kp[visible][ok, :2]).astype(int)
        has_reading = depth[pixel[:, 1], pixel[:, 0]] > 0
        own.extend(near[has_reading])
        filled.extend(near[~has_reading])
    assert len(own) > 50 and all(own)  # the keypoint's own pixel: always the body surface
    assert len(filled) > 3 and np.mean(filled) > 0.6  # a hole's neighbours: mostly the body, sometimes a limb in front


def test_calibrated_transfer_lands_where_the_depth_camera_sees_the_surface(scenes):
    errors = []
    for registered, frame, kp, _ in scenes:
        calib = frame.calibration
        reg_depth = registered.depth_mm()
        labels = transfer_keypoints(kp[:, :2], frame.depth_mm(), calib, radius_px=3)
        for j in np.flatnonzero((kp[:, 2] == 2) & (labels.flag == DEPTH_VALID)):
            z = reg_depth[int(round(kp[j, 1])), int(round(kp[j, 0]))]
            if z == 0:
                continue
            truth = project(
                apply_rigid(invert_rigid(calib.depth_to_color), backproject(kp[j, :2], z, calib.color)), calib.depth
            )
            errors.append(np.linalg.norm(labels.uv[j] - truth))
    errors = np.array(errors)
    assert len(errors) > 50
    assert np.median(errors) < 0.5 and np.mean(errors < 1.5) > 0.9  # limb edges: a neighbour's surface


def anchor_errors(scenes, rig: int) -> tuple[list, list]:
    """Anchor each person's true root-relative pose with the depth of rig 0 (registered) or 1
    (calibrated); returns the mean joint errors (mm) and the depth-consistency scores."""
    errors, scores = [], []
    for people in scenes:
        frame, kp, joints = people[rig], people[2], people[3]
        if (kp[[5, 6, 11, 12], 2] == 2).sum() < 2:
            continue
        keypoints = np.concatenate([kp[:, :2], (kp[:, 2:] == 2).astype(float)], axis=1)
        h36m = coco_to_h36m_positions(joints)
        labels = transfer_keypoints(kp[:, :2], frame.depth_mm(), frame.calibration)
        flag = np.where(kp[:, 2] == 2, labels.flag, DEPTH_HOLE)[None]
        camera, consistency = anchor_poses(
            (h36m - h36m[0])[None], keypoints[None], labels.surface[None], flag, frame.calibration, JOINT_RADIUS_MM
        )
        if np.isfinite(camera).all():
            errors.append(np.linalg.norm(camera[0] - h36m, axis=-1).mean())
            scores.extend(consistency[0][np.isfinite(consistency[0])])
    return errors, scores


def test_camera_frame_anchor_recovers_ground_truth(scenes):
    errors, scores = anchor_errors(scenes, rig=0)
    assert len(errors) >= 5
    assert np.median(errors) < 40  # mm: the surface offsets are the synthetic bodies' radii
    assert np.median(scores) > 0.8


def test_camera_frame_anchor_on_the_calibrated_rig(scenes):
    """The same anchoring through the second depth camera (its own intrinsics and extrinsics)."""
    errors, _ = anchor_errors(scenes, rig=1)
    assert len(errors) >= 5 and np.median(errors) < 40  # mm, in the color camera's frame


def test_a_hole_at_a_keypoint_takes_the_nearest_foreground_reading_not_the_background():
    """The foreground rule: around a hole at a person's edge, readings more than FOREGROUND_GAP_MM
    behind the nearest one are the wall behind, never the person's depth, even when closer in pixels."""
    from orpose.stages.depth_transfer import FOREGROUND_GAP_MM

    color = Intrinsics(40, 40, 50.0, 50.0, 19.5, 19.5)
    calib = CameraCalibration("c", color, None, True, None, 1.0)
    depth = np.full((40, 40), 4000.0)  # the wall
    depth[:, :20] = 2000.0  # the person, left half
    depth[18:23, 18:23] = 0.0  # a hole over the edge; the keypoint sits at its centre (20, 20)
    # nearest readings: (17, 20) at 3 px on the person side, (23, 20) at 3 px on the wall side,
    # and a wall pixel at distance 2.83 px diagonally would win on distance alone
    depth[18, 23] = 0.0
    labels = transfer_keypoints(np.array([[20.0, 20.0]]), depth, calib, radius_px=4)
    assert labels.flag[0] == DEPTH_VALID
    assert labels.surface[0, 2] == pytest.approx(2000.0)  # the person, not the wall 2000 mm behind
    assert 4000.0 - 2000.0 > FOREGROUND_GAP_MM
    # with only wall readings in reach, the wall is what there is
    far = depth.copy()
    far[:, :20] = 4000.0
    far[18:23, 18:23] = 0.0
    assert transfer_keypoints(np.array([[20.0, 20.0]]), far, calib, radius_px=4).surface[0, 2] == pytest.approx(4000.0)


def test_calibrated_rig_flags_a_hole_inside_the_depth_view_and_outside_it():
    color = Intrinsics(64, 48, 60.0, 60.0, 31.5, 23.5)
    depth_grid = Intrinsics(32, 24, 30.0, 30.0, 15.5, 11.5)
    depth_to_color = np.eye(4)
    depth_to_color[0, 3] = 40.0  # the depth camera 4 cm to the side
    calib = CameraCalibration("rig", color, depth_grid, False, depth_to_color, 1.0)
    depth = np.full((24, 32), 1500.0)
    depth[10:14, 14:18] = 0.0  # a hole in the middle of the depth view
    # the middle of the color image sees the hole; far outside the color image is outside the depth view too
    uv_hole = project(apply_rigid(depth_to_color, backproject(np.array([15.5, 11.5]), 1500.0, depth_grid)), color)
    labels = transfer_keypoints(np.array([uv_hole, [5.0, 23.5], [-200.0, 23.5]]), depth, calib, radius_px=1.0)
    np.testing.assert_array_equal(labels.flag, [DEPTH_HOLE, DEPTH_VALID, DEPTH_OUTSIDE])
    assert labels.surface[1, 2] == pytest.approx(1500.0)


def test_anchoring_with_the_production_surface_offsets_recovers_the_camera_frame_pose():
    """Depth sees each joint's surface SURFACE_OFFSET_MM in front of it (the production values):
    the anchored pose must land where the joints are, and agree with the depth (consistency 1)."""
    from orpose.joints import SURFACE_OFFSET_MM
    from orpose.joints import coco_to_h36m_positions as to_h36m
    from orpose.stages.depth_transfer import COCO_TO_H36M_JOINT

    color = Intrinsics(640, 480, 500.0, 500.0, 319.5, 239.5)
    calib = CameraCalibration("c", color, None, True, None, 1.0)
    rng = np.random.default_rng(3)
    coco = rng.normal(0, 250, (17, 3)) + [100.0, -50.0, 3500.0]
    coco[12, 2] = coco[11, 2]  # hips at one depth: then the mid-hip pixel is the pelvis' projection
    truth = to_h36m(coco)
    keypoints = np.concatenate([project(coco, color), np.ones((17, 1))], axis=1)[None]
    surface = coco.copy()
    surface[:, 2] -= SURFACE_OFFSET_MM  # the camera sees the body's surface, in front of the joint
    flags = np.full((1, 17), DEPTH_VALID)
    camera, consistency = anchor_poses(
        (truth - truth[0])[None], keypoints, surface[None], flags, calib, SURFACE_OFFSET_MM
    )
    # the root's depth is every torso joint's vote; its x, y the mid-hip pixel back-projected there
    np.testing.assert_allclose(camera[0], truth, atol=1e-6)
    # joints H36M copies from COCO agree exactly; eyes and ears are compared with the head joint's depth
    np.testing.assert_allclose(consistency[0, [0, *range(5, 17)]], 1.0)
    assert COCO_TO_H36M_JOINT[11] == 4 and COCO_TO_H36M_JOINT[12] == 1  # hips: what the anchor votes with
    # no torso joint with depth: no anchor, NaN; a limb joint in a hole has no consistency
    flags[0, [5, 6, 11, 12]] = DEPTH_HOLE
    camera, consistency = anchor_poses(
        (truth - truth[0])[None], keypoints, surface[None], flags, calib, SURFACE_OFFSET_MM
    )
    assert np.isnan(camera).all() and np.isnan(consistency[0, [5, 6, 11, 12]]).all()
