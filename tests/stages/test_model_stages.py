"""Each stage called directly on a tiny batch (no Ray, no executor): what it writes, that rejected
rows pass through untouched, and that the model stages give what their model gives."""

from pathlib import Path

import numpy as np
import pytest

from orpose.configs.schema import load_teacher_config
from orpose.frames.sources import open_source
from orpose.label_store.schema import STATUS_LABELLED, STATUS_REJECTED
from orpose.stages.assemble import AssembleStage
from orpose.stages.context import StageContext
from orpose.stages.decode import DecodeStage
from orpose.stages.detect import DetectStage
from orpose.stages.keypoints import KeypointStage
from orpose.stages.label_sets import hard_keypoints
from orpose.stages.lift import LiftStage
from orpose.stages.rows import batch_from_rows, objects, rows_from_refs

SAMPLE = Path(__file__).parents[2] / "data" / "sample"


@pytest.fixture(scope="module")
def context(tiny_weights):
    config = load_teacher_config("tiny", {"thresholds.box_score": 0.3, "detector.max_persons": 4, "device": "cpu"})
    return StageContext(
        config, tiny_weights, open_source(SAMPLE / "manifest.jsonl").calibrations()
    )  # torch threads untouched


@pytest.fixture(scope="module")
def decoded(context):
    """Two sample frames and one whose file is missing, through DecodeStage."""
    source = open_source(SAMPLE / "manifest.jsonl")
    refs = source.refs()[:2]
    missing = refs[0].__class__("missing", refs[0].camera_id, str(SAMPLE / "nowhere.png"), None)
    rows = rows_from_refs((ref, 0) for ref in [refs[0], missing, refs[1]])
    batch = batch_from_rows(rows)
    return DecodeStage.from_config(context)(batch)


def test_decode_marks_the_missing_frame_and_decodes_the_others(decoded):
    assert list(decoded["reject_reason"] != "") == [False, True, False]
    assert "nowhere.png" in decoded["reject_detail"][1] and decoded["color"][1].shape == (0, 0, 3)
    assert decoded["color"][0].shape == (480, 640, 3)


@pytest.fixture(scope="module")
def detected(context, decoded):
    stage = DetectStage.from_config(context)
    return stage, stage(dict(decoded))


def test_detect_gives_the_detectors_boxes_and_nothing_for_the_rejected_row(detected, decoded):
    stage, batch = detected
    direct = stage.detector([decoded["color"][0], decoded["color"][2]])
    for row, d in zip((0, 2), direct):
        np.testing.assert_array_equal(batch["boxes"][row], d.boxes)
        np.testing.assert_array_equal(batch["scores"][row], d.scores)
        assert len(batch["mask_rle"][row]) == len(d.boxes)
    assert batch["boxes"][1].shape == (0, 4) and len(batch["mask_rle"][1]) == 0
    assert batch["seconds_detect"].shape == (3,) and np.all(batch["seconds_detect"] >= 0)


@pytest.fixture(scope="module")
def with_keypoints(context, detected):
    stage = KeypointStage.from_config(context)
    return stage, stage(dict(detected[1]))


def test_keypoints_follow_the_boxes_and_the_color_column_is_dropped(with_keypoints, detected):
    _, batch = with_keypoints
    assert "color" not in batch
    for row in range(3):
        people = len(detected[1]["boxes"][row])
        assert batch["keypoints"][row].shape == (people, 17, 3) and batch["spread"][row].shape == (people, 17)
    assert any(len(k) for k in batch["keypoints"])  # the seeded tiny teacher finds someone at box_score 0.3


def test_lift_decides_the_hard_set_once_and_lifts_both_sets(context, with_keypoints):
    stage = LiftStage.from_config(context)
    batch = stage(dict(with_keypoints[1]))
    t = context.config.thresholds
    for row in range(3):
        keypoints, boxes = batch["keypoints"][row], batch["boxes"][row]
        mask, valid = hard_keypoints(keypoints, t.keypoint_score, t.min_keypoints)
        np.testing.assert_array_equal(batch["hard_mask"][row], mask)
        np.testing.assert_array_equal(batch["hard_valid"][row], valid)
        if len(keypoints):
            np.testing.assert_allclose(batch["pose_soft"][row], stage.lifter(keypoints, boxes), atol=1e-4)
            np.testing.assert_allclose(batch["pose_hard"][row], stage.lifter(keypoints, boxes, mask), atol=1e-4)
        else:
            assert batch["pose_soft"][row].shape == (0, 17, 3)


def test_lift_with_a_known_hard_set(context):
    """Known answer: confidences 0.9 on 5 joints, 0.1 elsewhere -> those 5 hard, skeleton valid (>= 4)."""
    stage = LiftStage.from_config(context)
    keypoints = np.zeros((1, 17, 3), np.float32)
    keypoints[0, :, :2] = np.random.default_rng(0).uniform(100, 300, (17, 2))
    keypoints[0, :, 2] = 0.1
    keypoints[0, [0, 5, 6, 11, 12], 2] = 0.9
    batch = stage(
        {
            "frame_id": np.array(["f"], dtype=object),
            "keypoints": objects([keypoints]),
            "boxes": objects([np.array([[90.0, 90.0, 310.0, 310.0]])]),
        }
    )
    assert batch["hard_mask"][0][0].sum() == 5 and batch["hard_mask"][0][0][[0, 5, 6, 11, 12]].all()
    assert bool(batch["hard_valid"][0][0])


def test_assemble_makes_one_record_per_row_with_the_reject_reason_kept(context, with_keypoints):
    lifted = LiftStage.from_config(context)(dict(with_keypoints[1]))
    batch = AssembleStage.from_config(context)(lifted)
    records = batch["record"]
    assert [r.frame["status"] for r in records] == [STATUS_LABELLED, STATUS_REJECTED, STATUS_LABELLED]
    assert records[1].frame["reject_reason"] == lifted["reject_reason"][1] != ""
    assert records[1].frame["reject_detail"] == lifted["reject_detail"][1]
    for row in (0, 2):
        assert records[row].num_persons == len(lifted["boxes"][row])
        np.testing.assert_array_equal(records[row].persons["hard_mask"], lifted["hard_mask"][row])
    assert "boxes" not in batch and "depth_encoded" not in batch and "seconds_assemble" in batch
