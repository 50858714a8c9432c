"""Speed options: channels-last must not change labels; fp16 on a CPU is refused clearly.
bf16's effect on labels is measured with `labels diff` (docs/benchmarks.md), not assumed here."""

import cv2
import numpy as np
import pytest

from orpose.configs.schema import load_teacher_config
from orpose.pipeline.executors import LocalExecutor

SAMPLE = __import__("pathlib").Path(__file__).parents[2] / "data" / "sample"


def test_channels_last_gives_the_same_model_outputs(tiny_weights):
    """NHWC changes the order of float operations, not the maths: features and heatmaps agree to
    float precision (seeded weights; the trained labels are compared below)."""
    import torch

    image = cv2.imread(str(SAMPLE / "day1/cam1/color/000001.png"))
    base = {"device": "cpu"}
    plain = LocalExecutor.for_teacher(load_teacher_config("tiny", base), tiny_weights)
    nhwc = LocalExecutor.for_teacher(load_teacher_config("tiny", {**base, "channels_last": True}), tiny_weights)
    crops = np.stack([cv2.resize(image, (96, 128))] * 3)
    torch.testing.assert_close(
        plain.stages["keypoints"].model._forward(crops),
        nhwc.stages["keypoints"].model._forward(crops),
        rtol=1e-4,
        atol=1e-5,
    )
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        a = plain.stages["detect"].detector.model.extract_feat(x)
        b = nhwc.stages["detect"].detector.model.extract_feat(x.contiguous(memory_format=torch.channels_last))
    for fa, fb in zip(a, b):
        torch.testing.assert_close(fa, fb, rtol=1e-4, atol=1e-4)


def test_fp16_on_cpu_is_refused_with_the_reason(tiny_weights):
    teacher = LocalExecutor.for_teacher(
        load_teacher_config("tiny", {"precision": "fp16", "device": "cpu"}), tiny_weights
    )
    with pytest.raises(ValueError, match="'fp16' needs a GPU"):
        teacher.label_images([cv2.imread(str(SAMPLE / "day1/cam1/color/000001.png"))])


@pytest.fixture(scope="module")
def sample_image():
    return cv2.imread(str(SAMPLE / "day1/cam1/color/000001.png"))


@pytest.fixture(scope="module")
def trained_fp32(sample_image):
    """The trained tiny teacher's fp32 NCHW output on a sample frame (the reference of both tests)."""
    return LocalExecutor.for_teacher(load_teacher_config("tiny", {"device": "cpu"})).label_images([sample_image])[0]


def test_channels_last_keeps_the_trained_labels(sample_image, trained_fp32):
    """The whole detector, not only its backbone: mmcv's RoIAlign reads NCHW memory, and before
    the features were made contiguous for the heads, NHWC gave 20 garbage boxes per frame."""
    nhwc = LocalExecutor.for_teacher(
        load_teacher_config("tiny", {"device": "cpu", "channels_last": True})
    ).label_images([sample_image])[0]
    assert len(trained_fp32["boxes"]) >= 1 and len(nhwc["boxes"]) == len(trained_fp32["boxes"])
    np.testing.assert_allclose(nhwc["boxes"], trained_fp32["boxes"], atol=0.05)
    np.testing.assert_allclose(nhwc["keypoints"][..., :2], trained_fp32["keypoints"][..., :2], atol=0.1)


def test_bf16_runs_the_whole_teacher_on_cpu_and_keeps_the_trained_labels(sample_image, trained_fp32):
    """bf16 autocast covers the detector's backbone and neck, the keypoint model and the lifter;
    the RPN and RoI heads run in fp32 (mmcv's CPU RoIAlign has no bf16 kernel: before that split,
    bf16 failed with "expected scalar type Float but found BFloat16"). With the trained tiny
    weights the persons found and their boxes stay put."""
    bf16 = LocalExecutor.for_teacher(load_teacher_config("tiny", {"device": "cpu", "precision": "bf16"})).label_images(
        [sample_image]
    )[0]
    assert len(trained_fp32["boxes"]) >= 1 and len(bf16["boxes"]) == len(trained_fp32["boxes"])
    np.testing.assert_allclose(bf16["boxes"], trained_fp32["boxes"], atol=3.0)
    assert np.median(np.linalg.norm(bf16["keypoints"][..., :2] - trained_fp32["keypoints"][..., :2], axis=-1)) < 3.0
    assert np.isfinite(bf16["pose_soft"]).all()
