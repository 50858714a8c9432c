"""The CI regression's definition: which source the trained tiny teacher labels, with which
overrides, against which reviewed reference, within which tolerances. Used by the regression test
(tests/regression/test_sample_regression.py) and by `make regression-reference`
(tools/refresh_regression_reference.py), so both label the sample the same way.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from label_store.compare import Tolerances

__all__ = ["ROOT", "REFERENCE", "SOURCE", "OVERRIDES", "TOLERANCES", "label_sample"]

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests/regression/tiny_sample_reference.json"
SOURCE = ROOT / "tests/regression/source/manifest.jsonl"
# The tiny config as shipped (trained weights, its thresholds), but a hard skeleton needs 15 hard
# keypoints: persons with fewer (7 of 27 here) fall outside the hard set.
OVERRIDES = ("device=cpu", "thresholds.min_keypoints=15")
TOLERANCES = Tolerances(
    keypoint_px=1.0,
    confidence=0.02,
    box_px=1.0,
    pose3d_mm=5.0,
    score=0.02,
    spread_px=1.0,
    consistency=0.05,
    mask_iou=0.9,
    bias_px=0.1,
)


def label_sample(out: Path, *extra: str) -> subprocess.CompletedProcess:
    """`labels run` of the tiny teacher over the regression source into `out` (its own process)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "run",
            "--config",
            "tiny",
            "--frames",
            str(SOURCE),
            "--out",
            str(out),
            "--no-progress",
            *extra,
            *OVERRIDES,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )
