"""`tools/gpu_check.sh` dry-run on CPU (issue 42): GPU minutes are lent rarely and counted, so the script that
spends them is run here first with the same phases' flow at tiny sizes (`DEVICE=cpu`, two frames), and must end
with exit 0 and a report that holds every command's output: a typo or a stale option fails here, not there."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def test_every_perf_lever_is_a_valid_config_of_the_paper_teachers():
    """The perf phase's levers are checked where they cost nothing: each parses into a checked config of the
    teacher it measures (a misspelt field or value would cost a GPU call)."""
    from orpose.configs.schema import load_teacher_config, parse_overrides

    listed = subprocess.run(["bash", "tools/gpu_check.sh", "--list-levers"], cwd=ROOT, capture_output=True, text=True)
    levers = listed.stdout.split("\n")[:-1]
    assert listed.returncode == 0 and len(levers) == 6 and levers[0] == "precision=fp32"
    for teacher in ("paper", "paper_x101"):
        for lever in levers:
            config = load_teacher_config(teacher, parse_overrides(lever.split()))
            assert config.precision in ("fp32", "bf16")
    assert config.detector.masks == "merged" and config.detector.views_per_forward == 8 and config.channels_last
    assert config.detector.deform_conv == "matmul"
    compiled = load_teacher_config(
        "paper", parse_overrides([*levers[-1].split(), "compile=true", "cudnn_benchmark=true"])
    )
    assert compiled.compile and compiled.cudnn_benchmark  # the compile phase's lever


def dry_run(tmp_path, phases: list[str], **settings: str) -> tuple[subprocess.CompletedProcess, str]:
    """`tools/gpu_check.sh PHASES` on this CPU at tiny sizes (two frames, the tiny teacher with its trained weights:
    seeded weights' flat heatmaps can flip a maximum on a one-frame bench); its result and its report's text."""
    report = tmp_path / "report.md"
    env = os.environ | {
        "DEVICE": "cpu",
        "FRAMES": "2",
        "PYTHON": sys.executable,
        "WORK": str(tmp_path / "work"),
        "PERF_TEACHER": "tiny",
        "BENCH_WEIGHTS": str(ROOT / "data" / "tiny_teacher"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **settings,
    }
    result = subprocess.run(
        ["bash", "tools/gpu_check.sh", *phases, "--report", str(report)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    return result, report.read_text()


@pytest.mark.slow
def test_the_gpu_scripts_tiny_and_perf_phases_run_dry_on_cpu(tmp_path):
    result, text = dry_run(
        tmp_path, ["tiny", "perf"], PERF_LEVERS="precision=fp32;precision=fp32 detector.masks=merged"
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:] + text[-4000:]
    assert "(exit 1" not in text and "(exit 2" not in text, text[-4000:]
    for heading in (
        "## tiny teacher: labels bench on cpu",
        "## tiny teacher: the bundled sample on CPU and on cpu",
        "## tiny, full TTA, precision=fp32 detector.masks=merged",
        "## tiny: each lever's labels against precision=fp32",
        "## tiny teacher: the bundled sample in bf16 on cpu against fp32 on CPU",
    ):
        assert heading in text
    assert "persons    : the detector's top 6 boxes a frame" in text  # the bench's --persons workload
    assert text.count("labels same") >= 2 and "DIFFERENT" not in text
    diffs = text.split("$ labels diff")[1:]  # the lever against fp32; the sample on both devices; in bf16
    assert len(diffs) == 3 and all("within tolerances" in d.split("```")[0] for d in diffs), diffs


@pytest.mark.slow
def test_the_gpu_scripts_ray_phase_runs_dry_on_cpu(tmp_path):
    """The ray phase: Ray's install is checked, then one whole-graph actor against the in-process executor and two
    actors sharing the device, each a `labels bench` (RAY_GPUS 0 on a CPU, where Ray has no GPU to give)."""
    result, text = dry_run(tmp_path, ["ray"], RAY_LEVER="precision=fp32")
    assert result.returncode == 0 and "(exit 1" not in text, (result.stdout + result.stderr)[-4000:] + text[-4000:]
    assert "## tiny, precision=fp32: Ray, one actor with the whole graph and 0 GPU, against in-process" in text
    assert "## tiny, precision=fp32: Ray, two whole-graph actors sharing the GPU (0.0 each)" in text
    assert text.count("  ray-whole :") == 2 and text.count("  local     :") == 1, text[-4000:]
