"""The ground truth as a run (issue 41, step 1): the same schema and commit path as a teacher's run, so its known
answers are exact: scored against its own annotations it is perfect, and it reads back through the students'
readers with the annotations' keypoints."""

import json

import numpy as np

from orpose.evaluation.evaluate import evaluate
from orpose.label_store.inspection import verify_run
from orpose.label_store.reader import LabelRun
from orpose.pipeline.ground_truth import ground_truth_run


def test_the_ground_truth_run_scores_perfectly_against_its_own_annotations(synth_dir, tmp_path):
    summary = ground_truth_run(synth_dir, tmp_path / "gt")
    assert summary.frames_labelled == 6 and not summary.frames_rejected
    assert verify_run(tmp_path / "gt") == []
    figures = evaluate(synth_dir / "annotations.json", run=tmp_path / "gt")
    assert figures["box"]["AP"] == 1.0 and figures["keypoints"]["AP"] == 1.0 and figures["pck"]["mean"] == 1.0
    assert figures["left_right_swaps"]["rate"] == 0.0
    assert figures["mpjpe_upper_body_mm"]["mean"] < 0.01 and figures["mpjpe_camera_mm"]["mean"] < 0.01
    identity = json.loads((tmp_path / "gt" / "run.json").read_text())
    assert identity["teacher"] == "ground_truth"


def test_the_ground_truth_run_holds_the_annotations_keypoints_and_their_hard_set(synth_dir, tmp_path):
    ground_truth_run(synth_dir, tmp_path / "gt")
    annotations = json.loads((synth_dir / "annotations.json").read_text())
    frame_of = {image["id"]: image["frame_id"] for image in annotations["images"]}
    run = LabelRun(tmp_path / "gt")
    for annotation in annotations["annotations"]:
        persons = run.get(frame_of[annotation["image_id"]]).persons
        truth = np.asarray(annotation["keypoints"], dtype=np.float32).reshape(17, 3)
        row = int(np.argmin(np.abs(persons["keypoints_2d"][:, :, :2] - truth[None, :, :2]).sum(axis=(1, 2))))
        np.testing.assert_allclose(persons["keypoints_2d"][row, :, :2], truth[:, :2], atol=1e-3)
        np.testing.assert_array_equal(persons["keypoints_2d"][row, :, 2], (truth[:, 2] > 0).astype(np.float32))
        np.testing.assert_array_equal(persons["hard_mask"][row], truth[:, 2] > 0)
        assert persons["score"][row] == 1.0


def test_with_fusion_the_ground_truth_s_views_triangulate_onto_its_3d(synth_dir, fused_ground_truth_run):
    """The whole fusion path (instant-ordered plan, the driver's fuse stage, the shards, the reader) on exact 2D:
    every joint two views see lands on the annotation's 3D, in the room and in each camera's frame."""
    from orpose.frames.calibration import load_calibration
    from orpose.frames.geometry import apply_rigid
    from orpose.label_store.shard import manifest_entries

    assert verify_run(fused_ground_truth_run) == []
    run = LabelRun(fused_ground_truth_run)
    annotations = json.loads((synth_dir / "annotations.json").read_text())
    cameras = load_calibration(synth_dir / "calibration.json")
    frame_of = {image["id"]: image["frame_id"] for image in annotations["images"]}
    for entry in manifest_entries(fused_ground_truth_run):  # a shard an instant: both cameras, one instant
        frames = [run.get(frame_id).frame for frame_id in entry.frame_ids]
        assert len(frames) == 2 and len({f["camera_id"] for f in frames}) == 2
        assert len({int(f["instant"]) for f in frames}) == 1
    checked = 0
    for annotation in annotations["annotations"]:
        labels = run.get(frame_of[annotation["image_id"]])
        truth_2d = np.asarray(annotation["keypoints"], np.float32).reshape(17, 3)
        row = int(np.argmin(np.abs(labels.persons["keypoints_2d"][:, :, :2] - truth_2d[None, :, :2]).sum(axis=(1, 2))))
        truth = np.asarray(annotation["keypoints_3d"], np.float64).reshape(17, 3)
        fused = labels.persons["pose3d_room_camera"][row]
        seen = labels.persons["pose3d_room_views"][row] >= 2
        np.testing.assert_allclose(fused[seen], truth[seen], atol=1.0)  # mm; the annotations are rounded
        room = apply_rigid(cameras[labels.frame["camera_id"]].camera_to_room, truth)
        np.testing.assert_allclose(labels.persons["pose3d_room"][row][seen], room[seen], atol=1.0)
        assert np.isnan(fused[~seen]).all()
        checked += int(seen.sum())
    assert checked > 100
    fusion = run.provenance()["thresholds_json"]["fusion"]  # the hard set's thresholds, recorded in every shard
    assert fusion["hard_max_error_px"] == 5.0 and fusion["hard_min_views"] == 2
