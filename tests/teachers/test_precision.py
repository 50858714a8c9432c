"""Speed options: channels-last must not change labels; fp16 on a CPU is refused clearly.
bf16's effect on labels is measured with `labels diff` (README "Throughput"), not assumed here."""

import cv2
import numpy as np
import pytest

from configs.schema import load_teacher_config
from teachers.teacher import Teacher

SAMPLE = __import__("pathlib").Path(__file__).parents[2] / "data" / "sample"


def test_channels_last_gives_the_same_model_outputs(tiny_weights):
    """NHWC changes the order of float operations, not the maths: features and heatmaps agree to
    float precision. (Final labels of the untrained tiny teacher can still move: dozens of its
    detections tie near score 0.5, and a last-bit difference reorders the merge.)"""
    import torch

    image = cv2.imread(str(SAMPLE / "day1/cam1/color/000001.png"))
    base = {"device": "cpu"}
    plain = Teacher(load_teacher_config("tiny", base), tiny_weights)
    nhwc = Teacher(load_teacher_config("tiny", {**base, "channels_last": True}), tiny_weights)
    crops = np.stack([cv2.resize(image, (96, 128))] * 3)
    torch.testing.assert_close(plain.keypoints._forward(crops), nhwc.keypoints._forward(crops), rtol=1e-4, atol=1e-5)
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        a = plain.detector.model.extract_feat(x)
        b = nhwc.detector.model.extract_feat(x.contiguous(memory_format=torch.channels_last))
    for fa, fb in zip(a, b):
        torch.testing.assert_close(fa, fb, rtol=1e-4, atol=1e-4)


def test_fp16_on_cpu_is_refused_with_the_reason(tiny_weights):
    teacher = Teacher(load_teacher_config("tiny", {"precision": "fp16", "device": "cpu"}), tiny_weights)
    with pytest.raises(ValueError, match="'fp16' needs a GPU"):
        teacher([cv2.imread(str(SAMPLE / "day1/cam1/color/000001.png"))])
