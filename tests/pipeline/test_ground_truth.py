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
