"""`tools/gpu_check.sh` dry-run on CPU (issue 42): GPU minutes are lent rarely and counted, so the script that
spends them is run here first with the same phases' flow at tiny sizes (`DEVICE=cpu`, two frames), and must end
with exit 0 and a report that holds every command's output: a typo or a stale option fails here, not there."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]

pytestmark = pytest.mark.slow


def test_the_gpu_scripts_tiny_phase_runs_dry_on_cpu(tmp_path):
    report = tmp_path / "report.md"
    env = os.environ | {
        "DEVICE": "cpu",
        "FRAMES": "2",
        "PYTHON": sys.executable,
        "WORK": str(tmp_path / "work"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    result = subprocess.run(
        ["bash", "tools/gpu_check.sh", "tiny", "--report", str(report)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    text = report.read_text()
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:] + text[-4000:]
    assert "(exit 1" not in text and "(exit 2" not in text, text[-4000:]
    for heading in ("## tiny teacher: labels bench on cpu", "## tiny teacher: the bundled sample on CPU and on cpu"):
        assert heading in text
    assert "persons    : the detector's top 6 boxes a frame" in text  # the bench's --persons workload
    assert "labels same" in text and "DIFFERENT" not in text
    assert "within tolerances" in text.split("labels diff")[-1]  # the two runs of the sample, compared
