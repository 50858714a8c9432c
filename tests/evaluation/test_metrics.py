"""Evaluation with known answers: ground truth against itself, known shifts, known shrinkage."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from orpose.evaluation.evaluate import evaluate, predictions_from_results
from orpose.evaluation.ground_truth import coco17_to_set, load_ground_truth
from orpose.evaluation.metrics import box_ap, keypoint_ap, left_right_swaps, mpjpe_upper_body, pck
from orpose.joints import coco_to_h36m_positions

SAMPLE_GT = Path(__file__).parents[2] / "data" / "sample" / "annotations.json"


@pytest.fixture(scope="module")
def gt():
    data, keypoint_set, _ = load_ground_truth(SAMPLE_GT)
    assert keypoint_set == "coco17"
    return data


def perfect_predictions(gt: dict) -> list[dict]:
    out = []
    for a in gt["annotations"]:
        joints = np.asarray(a["keypoints_3d"]).reshape(17, 3)
        h36m = coco_to_h36m_positions(joints)
        out.append(
            {
                "image_id": a["image_id"],
                "bbox": a["bbox"],
                "score": 1.0,
                "keypoints": np.asarray(a["keypoints"], dtype=float).reshape(17, 3),
                "pose3d": h36m - h36m[0],
            }
        )
    return out


def test_ground_truth_against_itself_is_perfect(gt):
    predictions = perfect_predictions(gt)
    assert box_ap(gt, predictions)["AP"] == pytest.approx(1.0)
    assert keypoint_ap(gt, predictions, "coco17")["AP"] == pytest.approx(1.0)
    assert pck(gt, predictions, "coco17")["mean"] == pytest.approx(1.0)
    result = mpjpe_upper_body(gt, predictions)
    assert result["mean"] == pytest.approx(0.0, abs=1e-9) and result["persons"] == len(gt["annotations"])


def test_a_known_shift_of_the_arm_joints_gives_that_mpjpe(gt):
    predictions = perfect_predictions(gt)
    for p in predictions:
        p["pose3d"] = p["pose3d"].copy()
        p["pose3d"][[11, 12, 13, 14, 15, 16]] += [30.0, 40.0, 0.0]  # arms move 50 mm; the hips (the root) stay
    assert mpjpe_upper_body(gt, predictions)["mean"] == pytest.approx(6 * 50.0 / 8)
    for p in predictions:
        p["pose3d"] = p["pose3d"] + [100.0, -20.0, 300.0]  # a global shift: root-relative, so no change
    assert mpjpe_upper_body(gt, predictions)["mean"] == pytest.approx(6 * 50.0 / 8)


def test_boxes_shrunk_to_iou_072_score_as_pycocotools_says(gt):
    predictions = perfect_predictions(gt)
    factor = np.sqrt(0.72)  # same centre, each side x sqrt(0.72): IoU with the original is 0.72
    for p in predictions:
        x, y, w, h = p["bbox"]
        p["bbox"] = [x + w * (1 - factor) / 2, y + h * (1 - factor) / 2, w * factor, h * factor]
    figures = box_ap(gt, predictions)
    assert figures["AP50"] == pytest.approx(1.0) and figures["AP75"] == pytest.approx(0.0)
    assert figures["AP"] == pytest.approx(0.5)  # IoU thresholds 0.50 ... 0.70 pass, 0.75 ... 0.95 fail


def test_pck_counts_a_known_fraction(gt):
    predictions = perfect_predictions(gt)
    for p in predictions:
        p["keypoints"] = p["keypoints"].copy()
        p["keypoints"][:5, 0] += 1e4  # the 5 face keypoints land far away
    result = pck(gt, predictions, "coco17")
    face = sum(int((np.asarray(a["keypoints"]).reshape(17, 3)[:5, 2] > 0).sum()) for a in gt["annotations"])
    labelled = sum(int((np.asarray(a["keypoints"]).reshape(17, 3)[:, 2] > 0).sum()) for a in gt["annotations"])
    assert result["mean"] == pytest.approx(1 - face / labelled)
    assert result["per_joint"]["nose"] == 0.0 and result["per_joint"]["left_wrist"] == 1.0


def test_left_right_swaps_count_the_pairs_mirrored(gt):
    predictions = perfect_predictions(gt)
    pairs = [(5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16), (1, 2), (3, 4)]
    labelled = [np.asarray(a["keypoints"]).reshape(17, 3)[:, 2] > 0 for a in gt["annotations"]]
    both = {pair: sum(int(seen[pair[0]] and seen[pair[1]]) for seen in labelled) for pair in pairs}
    assert left_right_swaps(gt, predictions, "coco17", min_separation=0.0) == {"rate": 0.0, "pairs": sum(both.values())}
    for p in predictions:  # shoulders and hips the wrong way round
        p["keypoints"] = p["keypoints"].copy()
        p["keypoints"][[5, 6, 11, 12]] = p["keypoints"][[6, 5, 12, 11]]
    result = left_right_swaps(gt, predictions, "coco17", min_separation=0.0)
    assert result["pairs"] == sum(both.values())
    assert result["rate"] == pytest.approx((both[(5, 6)] + both[(11, 12)]) / sum(both.values()))
    # pairs closer than a tenth of the person's extent are not counted
    assert left_right_swaps(gt, predictions, "coco17")["pairs"] < sum(both.values())


def mvor_like(tmp_path, gt) -> Path:
    """The sample's ground truth rewritten with MVOR's quirks and its 10 upper-body joints."""
    data = copy.deepcopy(gt)
    for a in data["annotations"]:
        coco = np.asarray(a["keypoints"], dtype=float).reshape(1, 17, 3)
        a["keypoints"] = coco17_to_set(coco, "mvor10")[0].ravel().tolist()
        a["category_id"] = "1"
        a["id"] = 7  # not unique
        del a["area"], a["iscrowd"], a["keypoints_3d"]
    box_only = copy.deepcopy(data["annotations"][0])
    box_only["keypoints"], box_only["only_bbox"] = [], 1
    box_only["bbox"] = [1.0, 1.0, 30.0, 60.0]
    data["annotations"].append(box_only)
    path = tmp_path / "camma_mvor_like.json"
    path.write_text(json.dumps(data))
    return path


def test_real_world_quirks_and_the_mvor_joint_set(tmp_path, gt):
    path = mvor_like(tmp_path, gt)
    cleaned, keypoint_set, repairs = load_ground_truth(path)
    assert keypoint_set == "mvor10"
    text = " ".join(repairs)
    assert "re-numbered" in text and "string category ids" in text and "without area" in text
    assert "without iscrowd" in text and "1 box-only" in text
    assert len({a["id"] for a in cleaned["annotations"]}) == len(cleaned["annotations"])
    results = [
        {
            "image_id": p["image_id"],
            "category_id": 1,
            "bbox": p["bbox"],
            "score": 1.0,
            "keypoints": p["keypoints"].ravel().tolist(),
        }
        for p in perfect_predictions(gt)
    ]
    (tmp_path / "results.json").write_text(json.dumps(results))
    figures = evaluate(path, results=tmp_path / "results.json")
    assert figures["keypoint_set"] == "mvor10"
    assert figures["keypoints"]["AP"] == pytest.approx(1.0) and figures["pck"]["mean"] == pytest.approx(1.0)
    assert figures["box"]["AP50"] < 1.0  # the box-only person was never predicted
    assert figures["mpjpe_upper_body_mm"] is None


def test_results_files_are_checked(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps([{"image_id": 1, "score": 0.5, "keypoints": [0] * 30}]))
    with pytest.raises(ValueError, match="10 keypoints; results must be COCO-17"):
        predictions_from_results(tmp_path / "r.json", "coco17")
