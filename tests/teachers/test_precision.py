"""Speed options: channels-last must not change labels; fp16 on a CPU is refused clearly.
bf16's effect on labels is measured with `labels diff` (README "Throughput"), not assumed here."""

import cv2
import numpy as np
import pytest

from configs.schema import load_teacher_config
from teachers.teacher import Teacher

SAMPLE = __import__("pathlib").Path(__file__).parents[2] / "data" / "sample"


def test_channels_last_gives_the_same_labels(tiny_weights):
    image = cv2.imread(str(SAMPLE / "day1/cam1/color/000001.png"))
    base = {"thresholds.box_score": 0.3, "detector.max_persons": 4, "device": "cpu"}
    plain = Teacher(load_teacher_config("tiny", base), tiny_weights)([image])[0]
    nhwc = Teacher(load_teacher_config("tiny", {**base, "channels_last": True}), tiny_weights)([image])[0]
    np.testing.assert_allclose(plain.boxes, nhwc.boxes, atol=1e-3)
    np.testing.assert_allclose(plain.keypoints, nhwc.keypoints, atol=1e-2)


def test_fp16_on_cpu_is_refused_with_the_reason(tiny_weights):
    teacher = Teacher(load_teacher_config("tiny", {"precision": "fp16", "device": "cpu"}), tiny_weights)
    with pytest.raises(ValueError, match="'fp16' needs a GPU"):
        teacher([cv2.imread(str(SAMPLE / "day1/cam1/color/000001.png"))])
