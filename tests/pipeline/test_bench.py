"""`labels bench` runs both sides and checks their labels agree. Speeds are printed by the command,
never asserted here (a timed test would measure the CI machine, not the code)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from orpose.pipeline.bench import dense_peak_tflops

ROOT = Path(__file__).parents[2]


@pytest.mark.slow
def test_bench_reports_every_side_and_identical_labels(tmp_path, tiny_weights):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "orpose.pipeline.cli",
            "bench",
            "--frames",
            "2",
            "--memory-factor",
            "2",
            "--weights-dir",
            str(tiny_weights),
            "--keep",
            str(tmp_path),
            "--pipelines",
            "ray-fused,local",
            "--persons",
            "3",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = result.stdout
    for prefix in (
        "persons    : the detector's top 3 boxes a frame",
        "naive loop :",
        "pipelines  :",
        "  ray-fused :",
        "  local     :",
        "kernel     :",
        "identical to the bit",
        "; labels same",
        "no steady state: too few frames after the first batch",  # 4 frames: nothing after the first batch
        "compute    :",
        "GFLOP per frame",
    ):
        assert prefix in report, report
    assert report.count("labels same") == 2 and "DIFFERENT" not in report, report
    # a CPU has no listed peak; a GPU machine prints its fraction (the test holds on either)
    assert "peak unknown (give --peak-tflops)" in report or "% of peak (its dense" in report, report
    # FLOPs per model stage, over each stage's busy seconds (the keypoint stage does work: --persons)
    per_stage = next(line for line in report.splitlines() if line.startswith("  per stage (ray-fused"))
    flops = {
        part.split()[0]: float(part.split()[1]) for part in per_stage.split(": ", 1)[1].split("; ")
    }  # stage -> GFLOP/frame
    assert set(flops) == {"detect", "keypoints", "lift"} and flops["detect"] > 0 and flops["keypoints"] > 0, per_stage
    assert "TFLOP/s" in per_stage
    assert (tmp_path / "naive.h5").exists() and (tmp_path / "naive-torchvision.h5").exists()
    assert (tmp_path / "run-local-frames-4" / "manifest").is_dir() and (
        tmp_path / "run-ray-fused-frames-2.json"
    ).exists()
    # --persons: the seeded detector's boxes reach every stage, 3 a frame, each with its keypoints and 3D
    from orpose.label_store.reader import LabelRun

    frames = list(LabelRun(tmp_path / "run-local-frames-4"))
    assert len(frames) == 4 and all(len(labels) == 3 for labels in frames)
    for labels in frames:  # each person's keypoints were placed (not left at zero) and lifted
        keypoints = labels.persons["keypoints_2d"]
        assert np.isfinite(keypoints).all() and (keypoints[..., :2] != 0).any(axis=(1, 2)).all()
        assert np.isfinite(labels.persons["pose3d_soft"]).all()


def test_an_unknown_pipeline_variant_is_refused_naming_the_known_ones(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "orpose.pipeline.cli", "bench", "--pipelines", "ray,warp"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert (
        result.returncode == 2
        and "unknown pipeline variant(s) ['warp'] (known: ray, ray-fused, ray-whole, local)" in result.stderr
    )


@pytest.mark.parametrize(
    "name, peak",
    [
        ("NVIDIA H100 80GB HBM3", 989.4),
        ("NVIDIA H100 PCIe", 756.0),
        ("NVIDIA H200", 989.4),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("CPU (2 cores)", None),
        ("NVIDIA GeForce RTX 3090", None),
    ],
)
def test_the_dense_peak_is_looked_up_by_device_name(name, peak):
    """The H100 PCIe has a lower peak than the SXM part: the more specific name must win."""
    assert dense_peak_tflops(name) == peak


def test_the_naive_loop_runs_in_bf16_on_cpu(tmp_path, tiny_weights):
    """Under CPU autocast mmdet's boxes come back in bf16, which numpy cannot hold: the naive loop converts them
    (it crashed there before any GPU could show it)."""
    import shutil

    import h5py

    from orpose.pipeline.bench import naive_loop

    sample = ROOT / "data" / "sample"
    for name in ("calibration.json", "day1"):
        (shutil.copytree if (sample / name).is_dir() else shutil.copy)(sample / name, tmp_path / name)
    (tmp_path / "manifest.jsonl").write_text((sample / "manifest.jsonl").read_text().splitlines()[0] + "\n")
    stats = naive_loop("tiny", {"precision": "bf16", "device": "cpu"}, str(tmp_path / "manifest.jsonl"),
                       str(tmp_path / "naive.h5"), str(tiny_weights))  # fmt: skip
    assert stats["frames"] == 1
    with h5py.File(tmp_path / "naive.h5", "r") as handle:
        assert len(handle) == 1
