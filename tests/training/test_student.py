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


def test_soft_keypoints_get_a_gaussian_and_their_confidence_as_loss_weight(trained_sample_run):
    """The soft set through mmpose's own transforms: a keypoint of confidence 0.3 gets its heatmap peak (mmpose's
    `GenerateTarget` alone draws none below 0.5) and weighs 0.3 in the loss; the hard set weighs 1 or 0."""
    import numpy as np
    from mmengine.registry import DefaultScope

    import orpose.teachers  # noqa: F401 - first: mmcv's extension on torchvision where mmcv-lite is installed
    from orpose.training.student import OrPoseKeypointDataset

    codec = dict(type="MSRAHeatmap", input_size=(96, 128), heatmap_size=(24, 32), sigma=1)
    pipeline = [
        dict(type="LoadImage"),
        dict(type="GetBBoxCenterScale"),
        dict(type="RandomFlip", direction="horizontal", prob=1.0),  # the weights follow their keypoints
        dict(type="TopdownAffine", input_size=codec["input_size"]),
        dict(type="GenerateTarget", encoder=codec),
        dict(type="ApplyKeypointWeights"),
    ]
    flip = np.array([0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15])
    for label_set in ("soft", "hard"):
        with DefaultScope.overwrite_default_scope("mmpose"):
            dataset = OrPoseKeypointDataset(run=str(trained_sample_run), label_set=label_set, pipeline=pipeline)
        low = 0
        for index in range(len(dataset)):
            info, item = dataset.get_data_info(index), dataset[index]
            expected = info["keypoints_visible"][0, flip, 1]  # the label weight of the mirrored side
            weights = item["keypoint_weights"][0]
            inside = item["heatmaps"].reshape(17, -1).max(axis=1) > 0.5  # its Gaussian is on the heatmap
            np.testing.assert_allclose(weights[inside], expected[inside], rtol=1e-6)
            assert not inside[expected == 0].any()
            if label_set == "hard":
                assert set(np.unique(weights)) <= {0.0, 1.0}
            low += int(((expected > 0) & (expected < 0.5) & inside).sum())
        if label_set == "soft":
            assert low > 0  # keypoints below 0.5 were drawn and weighed (the sample's labels have some)
