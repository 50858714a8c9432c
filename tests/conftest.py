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
