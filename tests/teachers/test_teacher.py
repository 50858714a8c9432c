"""The whole tiny teacher (the in-process executor's model stages) on synthetic frames: flip consistency
and real batching."""

import cv2
import numpy as np
import pytest

from orpose.configs.schema import load_teacher_config
from orpose.joints import flip_permutation
from orpose.pipeline.executors import LocalExecutor
from orpose.teachers.weights import WeightsMissingError

SAMPLE = __import__("pathlib").Path(__file__).parents[2] / "data" / "sample"


@pytest.fixture(scope="module")
def teacher(tiny_weights):
    # Seeded (untrained) weights score people around 0.5: a lower box threshold keeps some.
    return LocalExecutor.for_teacher(
        load_teacher_config("tiny", {"thresholds.box_score": 0.3, "detector.max_persons": 6}), tiny_weights
    )


def frames(n):
    paths = sorted(SAMPLE.glob("day1/cam*/color/*.png"))[:n]
    return [cv2.imread(str(p)) for p in paths]


def test_a_mirrored_frame_gives_mirrored_boxes(teacher):
    image = frames(1)[0]
    width = image.shape[1]
    original, mirrored = teacher.stages["detect"].detector([image, np.ascontiguousarray(image[:, ::-1])])
    assert len(original.boxes) > 0 and len(original.boxes) == len(mirrored.boxes)
    unmirrored = mirrored.boxes.copy()
    unmirrored[:, [0, 2]] = width - mirrored.boxes[:, [2, 0]]  # pixel-edge coordinates: x -> W - x
    order_a, order_b = np.lexsort(original.boxes.T[::-1]), np.lexsort(unmirrored.T[::-1])
    np.testing.assert_allclose(original.boxes[order_a], unmirrored[order_b], atol=1e-2)
    np.testing.assert_allclose(original.scores[order_a], mirrored.scores[order_b], atol=1e-5)
    np.testing.assert_array_equal(original.masks[order_a], mirrored.masks[order_b][:, :, ::-1])


def test_mirrored_crops_give_mirrored_keypoints(teacher):
    """Same boxes, mirrored: every TTA view of one is a view of the other, so the averaged
    heatmaps are mirror images and the keypoints mirror with left and right swapped."""
    image = frames(1)[0]
    width = image.shape[1]
    boxes = np.array([[100.0, 50.0, 260.0, 430.0], [300.5, 120.25, 420.0, 400.0]])
    mirrored_boxes = boxes.copy()
    mirrored_boxes[:, [0, 2]] = width - boxes[:, [2, 0]]
    original, mirrored = teacher.stages["keypoints"].model(
        [image, np.ascontiguousarray(image[:, ::-1])], [boxes, mirrored_boxes]
    )
    kp = mirrored.keypoints[:, flip_permutation()]  # the mirror's left is the person's right
    kp[..., 0] = width - 1 - kp[..., 0]  # pixel-index coordinates: x -> W - 1 - x
    # Untrained heatmaps are nearly flat: float rounding in the mirrored resampling can move DARK's
    # sub-pixel refinement a little. 1 px is an eighth of a heatmap pixel at these crop sizes; a
    # convention error (left/right, half or whole pixel) shows as several pixels on most joints.
    error = np.abs(original.keypoints[..., :2] - kp[..., :2])
    assert error.max() < 1.0 and np.mean(error < 1e-2) > 0.75
    np.testing.assert_allclose(original.keypoints[..., 2], kp[..., 2], atol=1e-4)


def test_batching_makes_fewer_forward_passes_and_the_same_labels(teacher):
    images = frames(8)
    before = (
        teacher.stages["detect"].detector.forward_passes,
        teacher.stages["keypoints"].model.forward_passes,
        teacher.stages["lift"].lifter.forward_passes,
    )
    batched = teacher.label_images(images)
    batched_calls = (
        teacher.stages["detect"].detector.forward_passes
        - before[0]
        + teacher.stages["keypoints"].model.forward_passes
        - before[1]
        + teacher.stages["lift"].lifter.forward_passes
        - before[2]
    )
    before = (
        teacher.stages["detect"].detector.forward_passes,
        teacher.stages["keypoints"].model.forward_passes,
        teacher.stages["lift"].lifter.forward_passes,
    )
    single = [teacher.label_images([image])[0] for image in images]
    single_calls = (
        teacher.stages["detect"].detector.forward_passes
        - before[0]
        + teacher.stages["keypoints"].model.forward_passes
        - before[1]
        + teacher.stages["lift"].lifter.forward_passes
        - before[2]
    )
    assert batched_calls < single_calls
    for a, b in zip(batched, single):
        np.testing.assert_allclose(a["boxes"], b["boxes"], atol=1e-4)
        np.testing.assert_allclose(a["keypoints"], b["keypoints"], atol=1e-4)
        # poses are in mm (hundreds): float32 sums over another batch size move them by ~1e-4 mm
        np.testing.assert_allclose(a["pose_soft"], b["pose_soft"], atol=1e-3)
        assert list(a["mask_rle"]) == list(b["mask_rle"])


def test_output_shapes_and_ranges(teacher):
    out = teacher.label_images(frames(1))[0]
    p = len(out["boxes"])
    assert (
        out["keypoints"].shape == (p, 17, 3) and out["spread"].shape == (p, 17) and out["pose_soft"].shape == (p, 17, 3)
    )
    assert len(out["mask_rle"]) == p and all(isinstance(rle, str) for rle in out["mask_rle"])
    assert (
        out["hard_mask"].shape == (p, 17) and out["hard_valid"].shape == (p,) and out["pose_hard"].shape == (p, 17, 3)
    )
    np.testing.assert_array_equal(out["pose_soft"][:, 0], 0)  # root-relative: the pelvis is the origin
    assert np.all(out["scores"] >= 0.3) and np.all(np.diff(out["scores"]) <= 0)
    assert np.all(out["spread"] >= 0)


def test_missing_weights_are_named_with_their_source(tmp_path):
    with pytest.raises(WeightsMissingError) as caught:
        LocalExecutor.for_teacher(load_teacher_config("paper_x101"), tmp_path)
    message = str(caught.value)
    assert "td-hm_hrnet-w48_8xb32-210e_coco-384x288-c161b7de_20220915.pth" in message
    assert "https://download.openmmlab.com/mmpose/" in message and str(tmp_path) in message
