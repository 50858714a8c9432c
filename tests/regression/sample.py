"""The CI regression's definition: which source the trained tiny teacher labels, with which
overrides, against which reviewed reference, within which tolerances. Used by the regression test
(tests/regression/test_sample_regression.py) and by `make regression-reference`
(`python -m tests.regression.sample`, `main` below), so both label the sample the same way.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from orpose.label_store.compare import Tolerances

__all__ = ["ROOT", "REFERENCE", "SOURCE", "OVERRIDES", "TOLERANCES", "label_sample"]

ROOT = Path(__file__).resolve().parents[2]  # the repository: this file is tests/regression/sample.py
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
            "orpose.pipeline.cli",
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


def main() -> None:
    """`make regression-reference`: re-label the regression source with the trained tiny teacher and
    overwrite tests/regression/tiny_sample_reference.json, printing every difference it accepts against
    the reference it replaces. Deliberate: review the printed differences and `git diff` before
    committing. The accuracy floors are not here: they are fixed in the test."""
    import tempfile

    from orpose.label_store.compare import compare, reference_from_run

    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder) / "run"
        result = label_sample(run)
        if result.returncode != 0:
            sys.exit(result.stderr)
        try:
            accepted = compare(REFERENCE, run, TOLERANCES)
            print("differences accepted against the previous reference:")
            print("\n".join(accepted.lines()))
            print("  (none past the tolerances)" if accepted.ok else f"  {accepted.problems.total} past the tolerances")
        except (FileNotFoundError, ValueError) as error:  # no reference yet, or one of an older format
            print(f"no comparable previous reference ({error})")
        reference_from_run(run, REFERENCE)
    print(f"wrote {REFERENCE.relative_to(ROOT)}; review it with `git diff` before committing")


if __name__ == "__main__":
    main()
