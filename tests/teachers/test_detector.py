"""The detector's RoIAlign kernel: torchvision's must compute mmcv's numbers, so switching it
(`detector.roi_align`, a speed option) cannot change a label."""

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmcv.ops import RoIAlign

from configs.schema import CONFIG_DIR, load_teacher_config
from teachers.detector import PersonDetector, set_roi_align_kernel
from teachers.mm import pick_device
from teachers.weights import checkpoint_path

SAMPLE = Path(__file__).parents[2] / "data" / "sample"


def random_rois(generator: torch.Generator, count: int, images: int, height: int, width: int, scale: float):
    """Boxes in image pixels (features are `scale` of that), some reaching past the border and
    some of zero or near-zero size: the cases where the kernels' clamping rules matter."""
    x1 = torch.rand(count, generator=generator) * width / scale * 1.2 - 5
    y1 = torch.rand(count, generator=generator) * height / scale * 1.2 - 5
    box_w = torch.rand(count, generator=generator) * width / scale
    box_h = torch.rand(count, generator=generator) * height / scale
    box_w[:3], box_h[3:6] = 0.0, 0.01
    batch_index = torch.randint(0, images, (count,), generator=generator).float()
    return torch.stack([batch_index, x1, y1, x1 + box_w, y1 + box_h], dim=1)


@pytest.mark.parametrize("sampling_ratio", [0, 2])
@pytest.mark.parametrize("output_size", [7, 14])
def test_torchvision_roi_align_gives_mmcv_numbers_to_the_bit(sampling_ratio, output_size):
    generator = torch.Generator().manual_seed(sampling_ratio * 100 + output_size)
    for scale in (1.0, 0.25, 0.03125):
        features = torch.randn(2, 8, 37, 53, generator=generator)
        rois = random_rois(generator, 60, 2, 37, 53, scale)
        mmcv_layer = RoIAlign(output_size, scale, sampling_ratio, "avg", aligned=True)
        torchvision_layer = RoIAlign(output_size, scale, sampling_ratio, "avg", aligned=True, use_torchvision=True)
        expected = mmcv_layer(features, rois)
        assert expected.abs().sum() > 0
        torch.testing.assert_close(torchvision_layer(features, rois), expected, rtol=0, atol=0)


def test_max_pooling_layers_keep_mmcv_kernel():
    """torchvision's kernel only averages: a max-pooling layer switched to it would change its output."""
    model = torch.nn.ModuleList([RoIAlign(7, 0.25, 0, "max"), RoIAlign(7, 0.25, 0, "avg")])
    assert set_roi_align_kernel(model, "torchvision") == 1
    assert not model[0].use_torchvision and model[1].use_torchvision
    assert set_roi_align_kernel(model, "mmcv") == 1 and not model[1].use_torchvision


def test_the_trained_detector_gives_the_same_detections_with_either_kernel():
    """Every RoI layer of the cascade (three box stages and the mask head) is switched, and the
    trained tiny detector's boxes, scores and masks on a sample frame stay exactly as they were."""
    config = load_teacher_config("tiny", {"device": "cpu"})
    image = cv2.imread(str(SAMPLE / "day1/cam1/color/000001.png"))

    def detector(kernel):
        spec = dataclasses.replace(config.detector, roi_align=kernel)
        return PersonDetector(
            spec,
            checkpoint_path(config.weights_dir, spec.checkpoint),
            pick_device("cpu"),
            config.thresholds.box_score,
            CONFIG_DIR,
        )

    stock, fast = detector("mmcv"), detector("torchvision")
    layers = [m for m in fast.model.modules() if isinstance(m, RoIAlign)]
    assert len(layers) >= 4 * 4 and all(m.use_torchvision for m in layers)  # 4 FPN levels x (3 box stages + masks)
    assert not any(m.use_torchvision for m in stock.model.modules() if isinstance(m, RoIAlign))
    expected, got = stock([image])[0], fast([image])[0]
    assert len(expected) >= 1
    np.testing.assert_array_equal(got.boxes, expected.boxes)
    np.testing.assert_array_equal(got.scores, expected.scores)
    np.testing.assert_array_equal(got.masks, expected.masks)


def test_views_batched_into_one_forward_give_the_detections_of_single_views():
    """`views_per_forward > 1` (the paper config uses 2) puts several TTA views of several frames
    into one network call, padded to one size: the merged detections must be those of one view at
    a time. Two scales make views of different sizes, so the padding is exercised too."""
    config = load_teacher_config("tiny", {"device": "cpu"})
    images = [cv2.imread(str(SAMPLE / f"day1/cam{c}/color/000001.png")) for c in (1, 2)]

    def detector(views_per_forward):
        spec = dataclasses.replace(config.detector, scales=(400, 480), flip=True, views_per_forward=views_per_forward)
        return PersonDetector(
            spec,
            checkpoint_path(config.weights_dir, spec.checkpoint),
            pick_device("cpu"),
            config.thresholds.box_score,
            CONFIG_DIR,
        )

    single, batched = detector(1), detector(3)
    expected, got = single(images), batched(images)
    assert single.forward_passes == 8 and batched.forward_passes == 3  # 2 frames x 2 scales x 2 (flip)
    for e, g in zip(expected, got):
        assert len(e) >= 1 and len(g) == len(e)
        np.testing.assert_allclose(g.boxes, e.boxes, atol=0.5)
        np.testing.assert_allclose(g.scores, e.scores, atol=1e-3)
        assert (g.masks != e.masks).mean() < 1e-3
