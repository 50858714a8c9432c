"""Shared fixtures: a small synthetic data set rendered once per test session."""

from pathlib import Path

import pytest

from orpose.synth.generate import SynthSettings, generate

SMALL = SynthSettings(frames=3, seed=11, cameras=2, width=320, height=240, max_people=4)
# The settings every labelling of the bundled sample in the tests uses (fast, and the same on both executors).
SAMPLE_OVERRIDES = {"thresholds.box_score": 0.3, "detector.max_persons": 4, "device": "cpu"}


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """3 instants x 2 cameras at 320x240, registered and calibrated depth, with ground truth."""
    out = tmp_path_factory.mktemp("synth")
    generate(out, SMALL, progress=False)
    return out


@pytest.fixture(scope="session")
def fused_ground_truth_run(synth_dir, tmp_path_factory) -> Path:
    """The ground truth of `synth_dir` (2 calibrated cameras) labelled with multi-view fusion on: the real driver,
    an instant-ordered plan (shards of 3 frames: one instant each), the fuse stage at each commit, no model."""
    import dataclasses
    import json

    from orpose.configs.schema import FusionSpec
    from orpose.frames.sources import ManifestSource
    from orpose.pipeline.ground_truth import GroundTruthExecutor, ground_truth_config
    from orpose.pipeline.run import run_labels

    config = dataclasses.replace(ground_truth_config(), fusion=FusionSpec(enabled=True))
    config = dataclasses.replace(config, run=dataclasses.replace(config.run, shard_size=3))
    source = ManifestSource(synth_dir / "manifest.jsonl")
    engine = GroundTruthExecutor(source, json.loads((synth_dir / "annotations.json").read_text()), config)
    out = tmp_path_factory.mktemp("fused_gt") / "run"
    run_labels(config, source, "gt", out, progress=False, executor="local", engine=engine)
    return out


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """Seeded tiny-teacher checkpoints, made by the same function as `make tiny-weights`."""
    from orpose.configs.schema import load_teacher_config
    from orpose.teachers.weights import init_seeded_weights

    folder = tmp_path_factory.mktemp("weights")
    init_seeded_weights(load_teacher_config("tiny"), folder)
    return folder


@pytest.fixture(scope="session")
def label_bundled_sample(tiny_weights):
    """`label(out, *extra)`: `labels run` of the seeded tiny teacher over the bundled sample into `out`
    (its own process; `extra`: more options, then overrides); returns the finished process."""
    import subprocess
    import sys

    root = Path(__file__).parents[1]

    def label(out: Path, *extra: str) -> subprocess.CompletedProcess:
        command = [
            sys.executable,
            "-m",
            "orpose.pipeline.cli",
            "run",
            "--config",
            "tiny",
            "--frames",
            str(root / "data/sample/manifest.jsonl"),
            "--out",
            str(out),
            "--weights-dir",
            str(tiny_weights),
            "--no-progress",
            *extra,  # options first, then overrides: the overrides must stay one run of positionals
            *(f"{key}={value}" for key, value in SAMPLE_OVERRIDES.items()),
        ]
        return subprocess.run(command, capture_output=True, text=True, cwd=root, timeout=900)

    return label


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory, tiny_weights) -> Path:
    """The bundled sample labelled by the (seeded) tiny teacher through the real pipeline, in this process
    (the local executor: the same stage graph and shards as Ray, tests/pipeline/test_executors.py, without
    starting Ray for the many tests that only read the labels)."""
    from orpose.configs.schema import load_teacher_config
    from orpose.frames.sources import open_source
    from orpose.pipeline.run import run_labels

    out = tmp_path_factory.mktemp("sample_run") / "run"
    frames = Path(__file__).parents[1] / "data/sample/manifest.jsonl"
    config = load_teacher_config("tiny", dict(SAMPLE_OVERRIDES))
    summary = run_labels(
        config, open_source(frames), str(frames), out, weights_dir=tiny_weights, progress=False, executor="local"
    )
    assert summary.frames_labelled + sum(summary.frames_rejected.values()) == 8
    return out


@pytest.fixture(scope="session")
def trained_sample_run(tmp_path_factory):
    """The bundled sample labelled in this process by the trained tiny teacher (its committed weights):
    3D that means something, unlike the seeded weights' of `sample_run`."""
    from orpose.configs.schema import load_teacher_config
    from orpose.frames.sources import open_source
    from orpose.pipeline.run import run_labels

    out = tmp_path_factory.mktemp("trained") / "run"
    frames = Path(__file__).parents[1] / "data/sample/manifest.jsonl"
    config = load_teacher_config("tiny", {"device": "cpu"})
    run_labels(config, open_source(frames), str(frames), out, progress=False, executor="local")
    return out


MVOR_FIXTURES = Path(__file__).parent / "fixtures" / "mvor"


@pytest.fixture(scope="session")
def mvor_files(tmp_path_factory) -> Path:
    """The real MVOR annotation file and released results (tests/fixtures/mvor, CC BY-NC-SA 4.0),
    decompressed into a folder: camma_mvor_2018.json, faster_rcnn_bbox.json, openpose_*.json."""
    import lzma

    packed = sorted(MVOR_FIXTURES.glob("*.json.xz"))
    if not packed:
        pytest.skip(f"the MVOR files are not in {MVOR_FIXTURES} (see its README.md for where they come from)")
    out = tmp_path_factory.mktemp("mvor")
    for path in packed:
        (out / path.name[: -len(".xz")]).write_bytes(lzma.decompress(path.read_bytes()))
    return out


# --- tiers --------------------------------------------------------------------------------------------------
# Every test gets one tier marker, so that one tier runs alone (`pytest -m unit`, `-m "not system"`; see
# docs/contributing.md, "Tests"). `make test` runs all three; CI runs all three on the pinned stack.
#   unit         pure functions and small objects: known answers, round trips, invariants (seconds)
#   integration  real models or real files in this process: the teacher's stages, shards, the in-process run
#   system       other processes: Ray (local or a two-node cluster), `labels` as a subprocess, a browser
SYSTEM_MODULES = {
    "tests/pipeline/test_cluster.py",
    "tests/pipeline/test_run.py",
    "tests/pipeline/test_spread.py",
    "tests/pipeline/test_stage_errors.py",
    "tests/pipeline/test_bench.py",
    "tests/pipeline/test_executors.py",
    "tests/test_cli.py",
    "tests/test_namespace.py",
    "tests/test_install.py",
    "tests/faults/test_full_disk.py",
    "tests/evaluation/test_commands.py",
    "tests/visualize/test_report.py",
    "tests/visualize/test_rerun_export.py",
    "tests/regression/test_sample_regression.py",
    "tests/tools/test_gpu_check.py",  # the GPU script's dry runs: bash, `labels` subprocesses, Ray
}
# fixtures that build models or label frames in this process
INTEGRATION_FIXTURES = {"sample_run", "trained_sample_run", "tiny_weights", "synth_dir", "mvor_files"}
TIERS = ("unit", "integration", "system")


def pytest_configure(config):
    for tier, what in zip(
        TIERS, ("pure functions, seconds", "real models or files in this process", "Ray, CLI subprocesses, browser")
    ):
        config.addinivalue_line("markers", f"{tier}: {what} (tests/conftest.py)")


def pytest_collection_modifyitems(config, items):
    root = Path(__file__).parents[1]
    for item in items:
        if any(item.get_closest_marker(tier) for tier in TIERS):
            continue  # a test that says its tier itself
        module = Path(item.fspath).relative_to(root).as_posix()
        if module in SYSTEM_MODULES or "label_bundled_sample" in item.fixturenames:
            tier = "system"
        elif item.get_closest_marker("slow") or INTEGRATION_FIXTURES & set(item.fixturenames):
            tier = "integration"
        else:
            tier = "unit"
        item.add_marker(getattr(pytest.mark, tier))
