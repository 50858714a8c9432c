"""CI regression: the trained tiny teacher (data/tiny_teacher) labels the bundled sample.

Two checks, both against tests/regression/tiny_sample_reference.json:
1. the labels match the reviewed reference within stated tolerances; a failure prints a readable
   diff (frame, person, keypoint, old -> new);
2. the labels are as accurate as they were, measured with `labels evaluate` against the sample's
   generator ground truth (box AP50, keypoint AP, PCK@0.2, soft-3D MPJPE) within stated margins:
   a change that moves labels *and* makes them worse fails here even when the reference is
   refreshed carelessly.
When a change is intended, refresh the reference deliberately with `make regression-reference`,
review `git diff`, commit.
"""

import json
import subprocess
import sys
from pathlib import Path

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
