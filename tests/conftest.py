"""Shared fixtures: a small synthetic data set rendered once per test session."""

from pathlib import Path

import pytest

from synth.generate import SynthSettings, generate

SMALL = SynthSettings(frames=3, seed=11, cameras=2, width=320, height=240, max_people=4)


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """3 instants x 2 cameras at 320x240, registered and calibrated depth, with ground truth."""
    out = tmp_path_factory.mktemp("synth")
    generate(out, SMALL, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """Seeded tiny-teacher checkpoints, made by the same function as `make tiny-weights`."""
    from configs.schema import load_teacher_config
    from teachers.weights import init_seeded_weights

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
            "pipeline.cli",
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
            "thresholds.box_score=0.3",
            "detector.max_persons=4",
            "device=cpu",
        ]
        return subprocess.run(command, capture_output=True, text=True, cwd=root, timeout=900)

    return label


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory, label_bundled_sample) -> Path:
    """The bundled sample labelled by the (seeded) tiny teacher through the real pipeline (Ray executor)."""
    out = tmp_path_factory.mktemp("sample_run") / "run"
    result = label_bundled_sample(out)
    assert result.returncode == 0, result.stderr[-3000:]
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
