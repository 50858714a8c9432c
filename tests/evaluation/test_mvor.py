"""MVOR's published tables, reproduced from its released result files; its PCK rule and 3D ground
truth on known answers."""

import json

import numpy as np
import pytest

from orpose.evaluation.evaluate import evaluate, format_report
from orpose.evaluation.ground_truth import coco17_to_set, load_ground_truth
from orpose.evaluation.metrics import mpjpe_3d
from orpose.evaluation.mvor import MVOR3D_TO_H36M, pck_mvor, truth_3d_by_image
from orpose.frames.mvor import read_mvor_rig

# The MVOR README's tables (also in tests/fixtures/mvor/README.md's source, shared/mvor/README.md).
PUBLISHED_BOXES = {
    "faster_rcnn_bbox": {"AP": 0.504, "AP50": 0.756, "AP75": 0.574, "AR1": 0.300, "AR10": 0.598, "AR": 0.601}
}
PUBLISHED_BOXES_FROM_KEYPOINTS = {"openpose_bbox": {"AP50": 0.278, "AR1_iou50": 0.299, "AR10_iou50": 0.406}}
PUBLISHED_PCK = {
    "openpose_kps": {"head": 70.4, "shoulder": 69.9, "hip": 42.3, "elbow": 57.6, "wrist": 45.3, "mean": 57.1},
    "openpose_kps_multiscale": {
        "head": 71.2,
        "shoulder": 70.6,
        "hip": 41.6,
        "elbow": 60.2,
        "wrist": 47.9,
        "mean": 58.3,
    },
}


@pytest.fixture(scope="module")
def mvor_gt(mvor_files):
    return load_ground_truth(mvor_files / "camma_mvor_2018.json")[0]


@pytest.mark.parametrize("name", sorted(PUBLISHED_BOXES))
def test_box_ap_and_ar_reproduce_the_published_table(mvor_files, name):
    figures = evaluate(mvor_files / "camma_mvor_2018.json", results=mvor_files / f"{name}.json")
    assert {key: round(figures["box"][key], 3) for key in PUBLISHED_BOXES[name]} == PUBLISHED_BOXES[name]
    assert "AR1 0.300  AR10 0.598  AR100 0.601" in format_report(figures)


@pytest.mark.parametrize("name", sorted(PUBLISHED_BOXES_FROM_KEYPOINTS))
def test_boxes_from_keypoints_reproduce_ap50_and_ar_at_iou_05(mvor_files, name):
    figures = evaluate(mvor_files / "camma_mvor_2018.json", results=mvor_files / f"{name}.json")
    expected = PUBLISHED_BOXES_FROM_KEYPOINTS[name]
    assert {key: round(figures["box"][key], 3) for key in expected} == expected


@pytest.mark.parametrize("name", sorted(PUBLISHED_PCK))
def test_pck_in_mvor_protocol_reproduces_the_published_table(mvor_files, name):
    figures = evaluate(mvor_files / "camma_mvor_2018.json", results=mvor_files / f"{name}.json")
    expected = PUBLISHED_PCK[name]
    assert {key: figures["pck_mvor"][key] for key in expected} == expected
    line = "PCK@0.2 (MVOR protocol): " + "  ".join(f"{k} {v:.1f}" for k, v in expected.items())
    assert line in format_report(figures)
    assert figures["pck_mvor"]["persons"] == 2926  # every 2D pose of the file


@pytest.mark.parametrize("name", sorted(PUBLISHED_PCK))
def test_coco_to_mvor_conversion_equals_the_authors_own_10_joints(mvor_files, name):
    results = json.loads((mvor_files / f"{name}.json").read_text())
    coco = np.array([r["coco_keypoints"] for r in results]).reshape(-1, 17, 3)
    theirs = np.array([r["keypoints"] for r in results]).reshape(-1, 10, 3)
    np.testing.assert_allclose(coco17_to_set(coco, "mvor10")[..., :2], theirs[..., :2], atol=1e-9)


def person(x0, y0, size=100.0):
    """10 MVOR joints spread over a size x size square at (x0, y0)."""
    grid = np.array(
        [
            [0.5, 0.0],
            [0.5, 0.2],
            [0.2, 0.25],
            [0.8, 0.25],
            [0.3, 0.6],
            [0.7, 0.6],
            [0.1, 0.5],
            [0.9, 0.5],
            [0.0, 1.0],
            [1.0, 1.0],
        ]
    )
    return np.concatenate([grid * size + [x0, y0], np.full((10, 1), 2.0)], axis=1)


def gt_of(*persons):
    return {
        "images": [{"id": 1}],
        "annotations": [
            {"image_id": 1, "keypoints": p.ravel().tolist(), "num_keypoints": 10, "only_bbox": 0} for p in persons
        ],
    }


def test_pck_mvor_known_answers_tolerance_missing_joints_and_shared_predictions():
    truth = person(100, 100)  # extent 101 x 101 pixel-inclusive: a joint counts within 0.2 x 101 = 20.2 px
    guess = truth.copy()
    guess[8, 0] += 20.0  # left wrist 20 px off: right
    guess[9, 0] += 20.5  # right wrist 20.5 px off: wrong
    guess[4, :] = 0.0  # left hip missing in the prediction: wrong
    result = pck_mvor(gt_of(truth), [{"image_id": 1, "score": 0.9, "keypoints": guess}], "mvor10")
    assert result["per_joint"]["left_wrist"] == 1.0 and result["per_joint"]["right_wrist"] == 0.0
    assert result["hip"] == 50.0 and result["wrist"] == 50.0 and result["head"] == 100.0
    assert result["mean"] == pytest.approx(round(100 * (1 + 1 + 0.5 + 1 + 0.5) / 5, 1))
    # two ground-truth persons at the same place take the same prediction (not exclusive)
    assert pck_mvor(gt_of(truth, truth), [{"image_id": 1, "score": 0.9, "keypoints": truth}], "mvor10")["mean"] == 100.0
    # the best-scoring overlapping prediction wins, even when a worse-placed one scores lower
    far = person(400, 400)
    both = [{"image_id": 1, "score": 0.2, "keypoints": truth}, {"image_id": 1, "score": 0.9, "keypoints": far}]
    assert pck_mvor(gt_of(truth), both, "mvor10")["mean"] == 100.0  # the far one does not overlap
    shifted = truth.copy()
    shifted[:, 0] += 60  # still overlaps 0.4 of the extent, every joint 60 px off
    both = [{"image_id": 1, "score": 0.2, "keypoints": truth}, {"image_id": 1, "score": 0.9, "keypoints": shifted}]
    assert pck_mvor(gt_of(truth), both, "mvor10")["mean"] == 0.0
    # a person with no overlapping prediction gets every joint wrong, and still counts
    result = pck_mvor(gt_of(truth, far), [{"image_id": 1, "score": 0.9, "keypoints": truth}], "mvor10")
    assert result["persons"] == 2 and result["mean"] == 50.0


def test_3d_ground_truth_against_itself_in_every_camera_is_0_mm(mvor_files, mvor_gt):
    truth = truth_3d_by_image(mvor_gt)
    views = sum(len(v) for v in truth.values())
    assert views > 2000  # 1061 poses, most of them annotated in 2 or 3 views
    predictions = [
        {"image_id": image_id, "bbox": t["bbox"], "score": 1.0, "pose3d_camera": t["joints"]}
        for image_id, items in truth.items()
        for t in items
    ]
    figures = mpjpe_3d(truth, predictions)
    assert figures["mpjpe_camera_mm"]["mean"] == 0.0 and figures["mpjpe_camera_mm"]["persons"] == views
    assert figures["mpjpe_upper_body_mm"]["mean"] == 0.0 and figures["mpjpe_upper_body_mm"]["persons"] == views
    # the same through a results file and `labels evaluate`
    entries = [
        {
            "image_id": p["image_id"],
            "bbox": p["bbox"],
            "score": 1.0,
            "keypoints": [0] * 51,
            "pose3d_camera": np.where(np.isnan(p["pose3d_camera"]), None, p["pose3d_camera"]).tolist(),
        }
        for p in predictions
    ]
    path = mvor_files / "truth_as_results.json"
    path.write_text(json.dumps(entries))
    figures = evaluate(mvor_files / "camma_mvor_2018.json", results=path)
    assert figures["mpjpe_camera_mm"]["mean"] == 0.0 and figures["mpjpe_upper_body_mm"]["mean"] == 0.0


def test_3d_ground_truth_lies_in_each_views_camera_and_known_offsets_give_known_errors(mvor_gt):
    rig = read_mvor_rig(mvor_gt)
    truth = truth_3d_by_image(mvor_gt)
    camera_of = {im["id"]: im["cam_id"] for im in mvor_gt["images"]}
    image_id = next(i for i, items in truth.items() if items and camera_of[i] == 2)  # a view of camera 2
    joints = truth[image_id][0]["joints"]
    back = rig.move(joints, "cam2", "cam1")
    pose = next(
        p
        for p in mvor_gt["annotations3D"]
        if str(image_id) in p["image_ids"].split("_")
        and np.allclose(np.asarray(p["keypoints3D"]).reshape(12, 4)[1, :3], back[MVOR3D_TO_H36M[1]])
    )
    assert pose is not None  # the neck (thorax) comes back to camera 1 where the file has it
    assert np.isnan(joints[[0, 2, 3, 5, 6, 7, 9]]).all()  # pelvis, knees, ankles, spine, neck/nose: not in MVOR
    predictions = [
        {"image_id": i, "bbox": t["bbox"], "score": 1.0, "pose3d_camera": t["joints"] + [30.0, 40.0, 0.0]}
        for i, items in truth.items()
        for t in items
    ]
    figures = mpjpe_3d(truth, predictions)
    assert figures["mpjpe_camera_mm"]["mean"] == pytest.approx(50.0)  # every joint 50 mm off
    assert figures["mpjpe_upper_body_mm"]["mean"] == pytest.approx(0.0, abs=1e-9)  # root-relative: no change
