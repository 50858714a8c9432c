"""A student trains from the shards through mmpose and mmengine (issue 34): `labels train-student` with the
CPU student config over the trained tiny teacher's labels of the bundled sample; the loss goes down and a
checkpoint that loads into the config's model is written."""

from pathlib import Path

import pytest
import torch

from tests.cli import labels

pytestmark = pytest.mark.slow  # trains for 100 iterations (about a minute on 2 cores)

CONFIG = Path(__file__).parents[2] / "configs/students/td-hm_hrnetv2-w16_orpose-soft-color_8xb16-300it_128x96.py"


def test_a_student_trains_on_the_labels_and_its_loss_goes_down(trained_sample_run, tmp_path):
    from orpose.training.student import logged_losses

    work = tmp_path / "student"
    result = labels("train-student", CONFIG, "--run", trained_sample_run, "--work-dir", work, "--iters", "100")
    assert result.returncode == 0, result.stderr[-3000:]
    losses = [loss for _, loss in logged_losses(work)]
    assert len(losses) >= 5
    first, last = sum(losses[:2]) / 2, sum(losses[-2:]) / 2
    print(f"student loss: {first:.5f} over the first two logged iterations, {last:.5f} over the last two")
    assert last < 0.85 * first
    checkpoint = torch.load(work / "iter_100.pth", map_location="cpu", weights_only=False)
    assert any(key.startswith("backbone.") for key in checkpoint["state_dict"])
    assert "checkpoint: " in result.stdout and "loss " in result.stdout
