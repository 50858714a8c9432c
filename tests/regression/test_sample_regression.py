"""CI regression: the trained tiny teacher (data/tiny_teacher) labels the regression source.

The source (tests/regression/source, README there) is the bundled sample seen through every path
the pipeline has: registered depth, a calibrated depth rig, a color-only camera, a depth hole over
two joints, a depth camera that misses part of the view, and a truncated frame that is rejected;
`thresholds.min_keypoints=15` puts some persons outside the hard set. Three checks:
1. the labels match the reviewed reference (tiny_sample_reference.json) in every stored field,
   each within its tolerance (label_store/compare.py; NaN only where the reference has NaN; no
   consistent sub-pixel shift); a failure prints frame, person, field, joint, old -> new;
2. the tiny teacher's accuracy targets hold on held-out generated frames (20 frames of seed 200,
   `training.tiny.validate`), as fixed floors written here, not in the refreshable reference;
3. `labels evaluate` gives the same figures against the sample's ground truth rewritten in MVOR's
   own layout (10 joints, 3D in camera 1's frame) as against the generator's.
When a change of labels is intended, `make regression-reference` rewrites the reference and prints
the differences it accepts; review `git diff`, commit.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from orpose.label_store.compare import compare
from orpose.label_store.reader import LabelRun
from orpose.label_store.schema import DEPTH_HOLE, DEPTH_NONE
from tests.regression.sample import REFERENCE, ROOT, TOLERANCES, label_sample

GROUND_TRUTH = ROOT / "data/sample/annotations.json"
# The tiny teacher's targets (docs/teacher.md, "The tiny teacher"), on held-out frames: floors, not margins.
FLOORS = {"box_ap50": 0.9, "keypoint_ap": 0.6}
CEILINGS = {"mpjpe_upper_body_mm": 80.0}


@pytest.fixture(scope="module")
def trained_sample_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("regression") / "run"
    result = label_sample(out, "--executor", "local")  # the labels are under test here, not Ray
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.mark.slow
def test_tiny_teacher_labels_of_the_sample_match_the_reference(trained_sample_run):
    comparison = compare(REFERENCE, trained_sample_run, TOLERANCES)
    report = "\n".join(comparison.lines())
    assert comparison.frames == 13 and comparison.matched > 0, report
    assert comparison.ok, (
        "labels differ from the reviewed reference:\n"
        + report
        + "\nIf intended: make regression-reference, review the diff, commit."
    )


@pytest.mark.slow
def test_the_regression_source_exercises_every_path(trained_sample_run):
    """If a change of the sample or of the thresholds stopped exercising a path, the comparison
    above would pass without looking at it."""
    run = LabelRun(trained_sample_run)
    frames = {labels.frame_id: labels for labels in run}
    assert frames["rejected/000002"].frame["reject_reason"] == "corrupt_image"
    labelled = [f for f in frames.values() if f.labelled]
    hard_valid = np.concatenate([f.persons["hard_valid"] for f in labelled])
    hard_mask = np.concatenate([f.persons["hard_mask"] for f in labelled])
    assert hard_valid.any() and not hard_valid.all(), "persons inside and outside the hard set"
    assert not hard_mask[hard_valid].all(), "dropped joints within hard skeletons"
    assert np.isnan(np.concatenate([f.persons["pose3d_hard"] for f in labelled])[~hard_valid]).all()
    color_only = frames["color_only/000001"]
    assert (color_only.persons["depth_flag"] == DEPTH_NONE).all() and np.isnan(
        color_only.persons["pose3d_camera"]
    ).all()
    assert frames["day1/cam2/000001"].frame["depth_size"].tolist() == [512, 424], "the calibrated rig's depth grid"
    assert (frames["depth_hole/000001"].persons["depth_flag"] == DEPTH_HOLE).any()
    assert (frames["offset_rig/000003"].persons["depth_flag"] == DEPTH_HOLE).any()
    assert np.isfinite(frames["day1/cam1/000001"].persons["pose3d_camera"]).all()


@pytest.mark.slow
def test_tiny_teacher_meets_its_accuracy_targets_on_held_out_frames(tmp_path):
    from orpose.training.tiny import validate

    figures = validate(ROOT / "data/tiny_teacher", tmp_path)
    measured = {
        "box_ap50": figures["box"]["AP50"],
        "keypoint_ap": figures["keypoints"]["AP"],
        "mpjpe_upper_body_mm": figures["mpjpe_upper_body_mm"]["mean"],
    }
    misses = [f"{name} {measured[name]:.3f} < {floor}" for name, floor in FLOORS.items() if not measured[name] >= floor]
    misses += [
        f"{name} {measured[name]:.1f} >= {ceiling}"
        for name, ceiling in CEILINGS.items()
        if not measured[name] < ceiling
    ]  # `not <`: a NaN figure fails too
    assert not misses, f"the tiny teacher misses its targets on held-out frames: {misses} (all: {measured})"


def evaluate_command(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orpose.pipeline.cli", "evaluate", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def mvor_format(gt: dict) -> dict:
    """The sample's ground truth rewritten as MVOR's real file is: 10 joints per 2D pose, 3D poses
    in `annotations3D` (12 joints x (x, y, z, v) in camera 1's frame), cameras by `cam_id`."""
    import copy

    from orpose.evaluation.ground_truth import coco17_to_set
    from orpose.frames.mvor import read_mvor_rig
    from orpose.joints import coco_to_h36m_positions

    out = copy.deepcopy(gt)
    rig = read_mvor_rig(gt)
    images = {im["id"]: im for im in out["images"]}
    for im in out["images"]:
        im["cam_id"] = int(im["camera_id"].split("/cam")[1])
    poses: dict = {}
    for a in out["annotations"]:
        image = images[a["image_id"]]
        h36m = coco_to_h36m_positions(np.reshape(a.pop("keypoints_3d"), (17, 3)))
        mvor12 = np.concatenate([h36m[[10, 8, 11, 14, 4, 1, 12, 15, 13, 16]], h36m[[13, 16]]])  # + hands at the wrists
        in_first = rig.move(mvor12, f"cam{image['cam_id']}", "cam1")
        pose = poses.setdefault((image["timestamp"], a["person_id"]), {"views": [], "joints": in_first})
        pose["views"].append(a["image_id"])
        a["keypoints"] = coco17_to_set(np.reshape(a["keypoints"], (1, 17, 3)), "mvor10")[0].ravel().tolist()
        a["only_bbox"] = 0
    out["annotations3D"] = [
        {
            "image_ids": "_".join(map(str, p["views"])),
            "person_id": person,
            "ref_camera": 0,
            "keypoints3D": np.concatenate([p["joints"], np.full((12, 1), 2.0)], axis=1).ravel().tolist(),
        }
        for (_, person), p in poses.items()
    ]
    out["categories"][0]["keypoints"] = [
        "head",
        "neck",
        "left_shoulder",
        "right_shoulder",
        "left_hip",
        "right_hip",
        "left_elbow",
        "right_elbow",
        "left_wrist",
        "right_wrist",
    ]
    return out


@pytest.mark.slow
def test_evaluate_a_run_against_ground_truth_in_mvors_own_format(trained_sample_run, tmp_path):
    """The same run against the same truth, once as the generator writes it and once as MVOR's file
    is laid out (3D in camera 1's frame, moved back into each view by the rig): the same figures."""
    gt_path = GROUND_TRUTH
    mvor_path = tmp_path / "camma_mvor_like.json"
    mvor_path.write_text(json.dumps(mvor_format(json.loads(gt_path.read_text()))))
    ours = json.loads(evaluate_command(trained_sample_run, "--gt", gt_path, "--json").stdout)
    result = evaluate_command(trained_sample_run, "--gt", mvor_path, "--json")
    assert result.returncode == 0, result.stderr
    theirs = json.loads(result.stdout)
    assert theirs["keypoint_set"] == "mvor10"
    assert theirs["pck_mvor"] == ours["pck_mvor"] and ours["pck_mvor"]["persons"] > 0
    for key in ("mpjpe_upper_body_mm", "mpjpe_camera_mm"):
        assert theirs[key]["persons"] == ours[key]["persons"] > 0, key
    assert theirs["mpjpe_upper_body_mm"]["mean"] == pytest.approx(ours["mpjpe_upper_body_mm"]["mean"], abs=0.01)
    assert np.isfinite(theirs["mpjpe_camera_mm"]["mean"])  # over MVOR's 10 joints, not all 17
    text = evaluate_command(trained_sample_run, "--gt", mvor_path).stdout
    assert "PCK@0.2 (MVOR protocol): head" in text and "MPJPE camera frame:" in text


@pytest.mark.slow
def test_predictions_of_the_hard_set_are_its_skeletons_and_keypoints_only(trained_sample_run):
    from orpose.evaluation.evaluate import predictions_from_run
    from orpose.evaluation.ground_truth import load_ground_truth

    gt, keypoint_set, _ = load_ground_truth(GROUND_TRUTH)
    soft = predictions_from_run(trained_sample_run, gt, keypoint_set, "soft")
    hard = predictions_from_run(trained_sample_run, gt, keypoint_set, "hard")
    run = LabelRun(trained_sample_run)
    in_gt = {im["frame_id"] for im in gt["images"]}
    frames = [f for f in run if f.frame_id in in_gt and f.labelled]
    assert len(soft) == sum(len(f) for f in frames)
    assert len(hard) == sum(int(f.persons["hard_valid"].sum()) for f in frames) < len(soft)
    by_box = {tuple(np.round(p["bbox"], 3)): p for p in hard}
    for f in frames:
        for k in np.flatnonzero(f.persons["hard_valid"]):
            x1, y1, x2, y2 = (float(v) for v in f.persons["box"][k])
            p = by_box[tuple(np.round([x1, y1, x2 - x1, y2 - y1], 3))]
            dropped = ~f.persons["hard_mask"][k]
            assert (p["keypoints"][dropped, 2] == 0).all() and (p["keypoints"][~dropped, 2] > 0).all()
            np.testing.assert_array_equal(p["pose3d"], f.persons["pose3d_hard"][k])
