"""`labels bench` runs both sides and checks their labels agree. Speeds are printed by the command,
never asserted here (a timed test would measure the CI machine, not the code)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_bench_reports_both_sides_and_identical_labels(tmp_path, tiny_weights):
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "bench", "--frames", "2", "--memory-factor", "2",
                             "--weights-dir", str(tiny_weights), "--keep", str(tmp_path), "thresholds.box_score=0.3",
                             "detector.max_persons=3"], capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = result.stdout
    for prefix in ("naive loop :", "pipeline   :", "ratio      :", "steady     :", "of which  : kernel", "identical to the bit",
                   "labels     : same", "memory     :"):
        assert prefix in report, report
    assert (tmp_path / "naive.h5").exists() and (tmp_path / "naive-torchvision.h5").exists()
    assert (tmp_path / "run-frames-4" / "manifest").is_dir()
