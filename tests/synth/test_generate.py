"""The generator: deterministic bytes, geometry that agrees with itself, both sources read it."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from orpose.frames.geometry import project
from orpose.frames.sources import ManifestSource, MvorTreeSource, open_source
from orpose.joints import coco_to_h36m_positions
from orpose.synth.body import JOINT_RADIUS_MM
from orpose.synth.generate import VISIBILITY_SLACK_MM, SynthSettings, generate, keypoint_visibility
from tests.conftest import SMALL


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_other_bytes(synth_dir, tmp_path):
    generate(tmp_path / "again", SMALL, progress=False)
    assert digest(tmp_path / "again") == digest(synth_dir)
    other = SynthSettings(**{**SMALL.__dict__, "seed": SMALL.seed + 1, "frames": 1})
    generate(tmp_path / "other", other, progress=False)
    assert digest(tmp_path / "other")["day1/cam1/color/000001.png"] != digest(synth_dir)["day1/cam1/color/000001.png"]


@pytest.fixture(scope="module")
def gt(synth_dir):
    return json.loads((synth_dir / "annotations.json").read_text())


def test_projected_3d_joints_equal_the_2d_ground_truth(synth_dir, gt):
    source = MvorTreeSource(synth_dir, synth_dir / "annotations.json")
    images = {im["id"]: im for im in gt["images"]}
    labelled = 0
    for ann in gt["annotations"]:
        intr = source.calibrations()[images[ann["image_id"]]["camera_id"]].color
        keypoints = np.array(ann["keypoints"], dtype=float).reshape(17, 3)
        joints = np.array(ann["keypoints_3d"]).reshape(17, 3)
        labelled_joints = keypoints[:, 2] > 0
        error = np.abs(project(joints, intr)[labelled_joints] - keypoints[labelled_joints, :2])
        assert error.max() < 0.5
        labelled += labelled_joints.sum()
    assert labelled > 100


def test_depth_at_visible_joints_lies_within_the_body_radius(synth_dir, gt):
    source = open_source(synth_dir / "manifest.jsonl")
    frames = {ref.frame_id: source.load(ref) for ref in source.refs()}
    images = {im["id"]: im for im in gt["images"]}
    checked = holes = 0
    for ann in gt["annotations"]:
        depth = frames[images[ann["image_id"]]["frame_id"]].depth_mm()
        keypoints = np.array(ann["keypoints"], dtype=float).reshape(17, 3)
        joints = np.array(ann["keypoints_3d"]).reshape(17, 3)
        for j in np.flatnonzero(keypoints[:, 2] == 2):
            measured = depth[int(round(keypoints[j, 1])), int(round(keypoints[j, 0]))]
            if measured == 0:
                holes += 1  # a sensor hole: no reading, by definition not a disagreement
                continue
            assert abs(measured - joints[j, 2]) <= JOINT_RADIUS_MM[j] + VISIBILITY_SLACK_MM
            checked += 1
    assert checked > 50 and holes < checked / 5


def test_occlusion_between_people_shows_in_visibility():
    """Two people on one line of sight: the one behind has hidden joints, the front one none."""
    from orpose.frames.calibration import Intrinsics
    from orpose.frames.geometry import apply_rigid, look_at
    from orpose.synth.body import sample_person
    from orpose.synth.render import KIND_CAPSULE, SceneGeometry, render
    from orpose.synth.scene import ROOM_HI, ROOM_LO

    rng = np.random.default_rng(3)
    front = sample_person(rng, np.array([0.0, -800.0]), 180.0)
    back = sample_person(rng, np.array([0.0, 600.0]), 180.0)
    capsules = front.capsules + back.capsules
    geometry = SceneGeometry(
        np.array([c.a for c in capsules]),
        np.array([c.b for c in capsules]),
        np.array([c.radius for c in capsules]),
        np.zeros((0, 3)),
        np.zeros((0, 3)),
        ROOM_LO,
        ROOM_HI,
    )
    intr = Intrinsics(160, 120, 150.0, 150.0, 79.5, 59.5)
    camera = look_at(np.array([0.0, -2900.0, 1100.0]), np.array([0.0, 0.0, 1000.0]))
    view = render(geometry, intr, camera)
    owners = np.array([0] * len(front.capsules) + [1] * len(back.capsules))
    owner = np.where(view.kind == KIND_CAPSULE, owners[view.index], -1)
    _, flags_front = keypoint_visibility(apply_rigid(camera, front.joints), intr, view.depth, owner, 0)
    _, flags_back = keypoint_visibility(apply_rigid(camera, back.joints), intr, view.depth, owner, 1)
    assert (flags_back == 1).sum() >= 5  # torso joints behind the front person
    assert (flags_front == 1).sum() < (flags_back == 1).sum()


def test_both_sources_read_the_same_frames(synth_dir):
    manifest = ManifestSource(synth_dir / "manifest.jsonl")
    tree = MvorTreeSource(synth_dir, synth_dir / "annotations.json")
    assert [r.frame_id for r in manifest.refs()] == [r.frame_id for r in tree.refs()]
    assert len(manifest.refs()) == SMALL.frames * SMALL.cameras
    for a, b in zip(manifest.refs(), tree.refs()):
        assert (a.color_path, a.depth_path, a.camera_id) == (b.color_path, b.depth_path, b.camera_id)
        fa, fb = manifest.load(a), tree.load(b)
        np.testing.assert_array_equal(fa.color_bgr, fb.color_bgr)
        np.testing.assert_array_equal(fa.depth_raw, fb.depth_raw)
        assert fa.calibration.color == fb.calibration.color
    calibrated = ManifestSource(synth_dir / "calibrated_rig" / "manifest.jsonl")
    frame = calibrated.load(calibrated.refs()[0])
    assert not frame.calibration.registered and frame.depth_raw.shape == (212, 256)


def test_calibrated_depth_camera_sees_the_same_surfaces(synth_dir, gt):
    """A visible joint seen through the second depth camera: its depth there agrees with the
    joint moved into that camera's frame by the calibration's extrinsics."""
    from orpose.frames.geometry import apply_rigid, invert_rigid

    source = ManifestSource(synth_dir / "calibrated_rig" / "manifest.jsonl")
    frames = {ref.frame_id: source.load(ref) for ref in source.refs()}
    images = {im["id"]: im for im in gt["images"]}
    agree = total = 0
    for ann in gt["annotations"]:
        frame = frames[images[ann["image_id"]]["frame_id"]]
        calib = frame.calibration
        joints = apply_rigid(invert_rigid(calib.depth_to_color), np.array(ann["keypoints_3d"]).reshape(17, 3))
        uv = project(joints, calib.depth)
        depth = frame.depth_mm()
        for j in np.flatnonzero(np.array(ann["keypoints"]).reshape(17, 3)[:, 2] == 2):
            col, row = np.round(uv[j]).astype(int)
            if 0 <= row < depth.shape[0] and 0 <= col < depth.shape[1] and depth[row, col] > 0:
                total += 1
                agree += abs(depth[row, col] - joints[j, 2]) <= JOINT_RADIUS_MM[j] + VISIBILITY_SLACK_MM
    assert total > 50 and agree / total > 0.9  # the cameras are 5 cm apart: a few joints change visibility


def test_ground_truth_is_coco_and_h36m_derivable(gt):
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = gt
    coco.createIndex()
    assert len(coco.getImgIds()) == SMALL.frames * SMALL.cameras and coco.getCatIds() == [1]
    ann = gt["annotations"][0]
    assert coco.annToMask(ann).sum() == ann["area"]
    joints = np.array(ann["keypoints_3d"]).reshape(17, 3)
    h36m = coco_to_h36m_positions(joints)
    np.testing.assert_allclose(h36m[0], (joints[11] + joints[12]) / 2)
    assert gt["dataset_info"]["camid_2_num"] == {"synth-cam1": 1, "synth-cam2": 2}


def test_the_rig_in_cameras_info_moves_each_persons_3d_joints_onto_the_other_cameras(gt):
    """MVOR's layout written by the generator, read by frames.mvor: a person's joints in camera 1's
    frame, moved by the rig, are the same person's joints in camera 2's frame (and the room's)."""
    from orpose.frames.mvor import read_mvor_rig

    rig = read_mvor_rig(gt)
    images = {im["id"]: im for im in gt["images"]}
    by_key = {
        (images[a["image_id"]]["timestamp"], images[a["image_id"]]["camera_id"], a["person_id"]): a
        for a in gt["annotations"]
    }
    checked = 0
    for (time, camera, person), a in by_key.items():
        other = by_key.get((time, "day1/cam2", person))
        if camera != "day1/cam1" or other is None:
            continue
        joints = np.reshape(a["keypoints_3d"], (17, 3))
        # transforms are written to 1e-6: a rotation off by 1e-6 moves a point 5 m away by 5 um
        np.testing.assert_allclose(
            rig.move(joints, "cam1", "cam2"), np.reshape(other["keypoints_3d"], (17, 3)), atol=0.01
        )
        np.testing.assert_allclose(
            rig.to_room(joints, "cam1"), rig.to_room(np.reshape(other["keypoints_3d"], (17, 3)), "cam2"), atol=0.01
        )
        checked += 1
    assert checked >= 2


def test_calibration_json_holds_the_rig_that_moves_each_persons_3d_joints_between_cameras(synth_dir, gt):
    """calibration.json's camera poses (what multi-view fusion reads): a person's joints in one camera's frame,
    moved through the room into another camera's, are that person's joints there; and the room is the
    generator's world, so every camera's view of a person lands on the same room points."""
    from orpose.frames.calibration import load_calibration, rig_from_calibration

    rig = rig_from_calibration(load_calibration(synth_dir / "calibration.json"))
    images = {im["id"]: im for im in gt["images"]}
    views: dict = {}
    for a in gt["annotations"]:
        image = images[a["image_id"]]
        views.setdefault((image["timestamp"], a["person_id"]), []).append((image["camera_id"], a))
    checked = 0
    for seen in views.values():
        for (camera_a, a), (camera_b, b) in zip(seen, seen[1:]):
            joints_a, joints_b = (np.reshape(x["keypoints_3d"], (17, 3)) for x in (a, b))
            np.testing.assert_allclose(rig.move(joints_a, camera_a, camera_b), joints_b, atol=0.01)
            np.testing.assert_allclose(rig.to_room(joints_a, camera_a), rig.to_room(joints_b, camera_b), atol=0.01)
            checked += 1
    assert checked >= 2
