"""CI regression: the trained tiny teacher (data/tiny_teacher) labels the bundled sample.

Two checks, both against tests/regression/tiny_sample_reference.json:
1. the labels match the reviewed reference within stated tolerances; a failure prints a readable
   diff (frame, person, keypoint, old -> new);
2. the labels are as accurate as they were, measured with `labels evaluate` against the sample's
   generator ground truth (box AP50, keypoint AP, PCK@0.2, soft-3D MPJPE) within stated margins:
   a change that moves labels *and* makes them worse fails here even when the reference is
   refreshed carelessly;
3. `labels evaluate` gives the same figures against the sample's ground truth rewritten in MVOR's
   own layout (10 joints, 3D in camera 1's frame) as against the generator's.
When a change is intended, refresh the reference deliberately with `make regression-reference`,
review `git diff`, commit.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evaluation.evaluate import evaluate
from label_store.compare import Tolerances, compare

ROOT = Path(__file__).parents[2]
REFERENCE = Path(__file__).parent / "tiny_sample_reference.json"
GROUND_TRUTH = ROOT / "data/sample/annotations.json"
OVERRIDES = ["device=cpu"]  # the tiny config as shipped: trained weights, its own thresholds
TOLERANCES = Tolerances(keypoint_px=1.0, confidence=0.02, box_px=1.0, pose3d_mm=5.0)
# How far each accuracy figure may fall below (MPJPE: rise above) the reference's before CI fails.
MARGINS = {"box_ap50": 0.05, "keypoint_ap": 0.05, "pck": 0.03, "mpjpe_mm": 10.0}


def label_sample(out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--config", "tiny", "--frames",
                           str(ROOT / "data/sample/manifest.jsonl"), "--out", str(out), "--no-progress", *OVERRIDES],
                          capture_output=True, text=True, cwd=ROOT, timeout=900)


def accuracy(run: Path) -> dict:
    """The four figures the regression tracks, from `labels evaluate`'s computation."""
    figures = evaluate(GROUND_TRUTH, run=run)
    mpjpe = figures["mpjpe_upper_body_mm"]
    return {"box_ap50": figures["box"]["AP50"], "keypoint_ap": figures["keypoints"]["AP"],
            "pck": figures["pck"]["mean"], "mpjpe_mm": None if mpjpe is None else mpjpe["mean"]}


@pytest.fixture(scope="module")
def trained_sample_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("regression") / "run"
    result = label_sample(out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.mark.slow
def test_tiny_teacher_labels_of_the_sample_match_the_reference(trained_sample_run):
    comparison = compare(REFERENCE, trained_sample_run, TOLERANCES)
    report = "\n".join(comparison.lines())
    assert comparison.frames == 8 and comparison.matched > 0, report
    assert comparison.ok, "labels differ from the reviewed reference:\n" + report + \
        "\nIf intended: make regression-reference, review the diff, commit."


@pytest.mark.slow
def test_tiny_teacher_accuracy_on_the_sample_holds(trained_sample_run):
    reference = json.loads(REFERENCE.read_text())["accuracy"]
    now = accuracy(trained_sample_run)
    worse = [f"{name}: {now[name]:.3f} (reference {reference[name]:.3f}, margin {MARGINS[name]})"
             for name in ("box_ap50", "keypoint_ap", "pck") if now[name] < reference[name] - MARGINS[name]]
    assert now["mpjpe_mm"] is not None, "no soft-3D pose matched a ground-truth person"
    if now["mpjpe_mm"] > reference["mpjpe_mm"] + MARGINS["mpjpe_mm"]:
        worse.append(f"mpjpe_mm: {now['mpjpe_mm']:.1f} (reference {reference['mpjpe_mm']:.1f}, margin {MARGINS['mpjpe_mm']})")
    assert not worse, "the tiny teacher's labels of the sample got less accurate:\n" + "\n".join(worse)


def evaluate_command(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "evaluate", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def mvor_format(gt: dict) -> dict:
    """The sample's ground truth rewritten as MVOR's real file is: 10 joints per 2D pose, 3D poses
    in `annotations3D` (12 joints x (x, y, z, v) in camera 1's frame), cameras by `cam_id`."""
    import copy

    from evaluation.ground_truth import coco17_to_set
    from frames.mvor import read_mvor_rig
    from joints import coco_to_h36m_positions

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
        {"image_ids": "_".join(map(str, p["views"])), "person_id": person, "ref_camera": 0,
         "keypoints3D": np.concatenate([p["joints"], np.full((12, 1), 2.0)], axis=1).ravel().tolist()}
        for (_, person), p in poses.items()]
    out["categories"][0]["keypoints"] = ["head", "neck", "left_shoulder", "right_shoulder", "left_hip", "right_hip",
                                         "left_elbow", "right_elbow", "left_wrist", "right_wrist"]
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
