"""The 2D students of the probe (`training.keypoint_student`): crops cut as the teacher cuts them, mirrored crops
with their sides swapped, the augmentation's rotation in pixels, soft targets, and the probe's 2D scoring
(`pipeline.probe._score_2d`) on known answers."""

import math

import numpy as np
import pytest
import torch

from orpose.joints import COCO_KEYPOINTS
from orpose.training.keypoint_student import FrameLabels, PersonCrops, _random_affines, crop_persons

INPUT = (96, 128)  # the student config's (w, h)


def _frame(points: np.ndarray, box=(200.0, 100.0, 300.0, 400.0), weight: float = 1.0, mark=()) -> FrameLabels:
    image = np.zeros((480, 640, 3), np.float32)
    for x, y in points[list(mark)].astype(int):
        image[y - 3 : y + 4, x - 3 : x + 4] = 255.0
    return FrameLabels("f0", image, np.array([box]), points[None].astype(np.float64), np.full((1, 17), weight))


def _points() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.stack([rng.integers(215, 285, 17), rng.integers(120, 380, 17)], axis=1).astype(np.float64)


def test_crops_carry_each_keypoint_onto_the_pixel_it_marks():
    points = _points()
    for k in range(17):  # a square marked around keypoint k is brightest where the crop's keypoint k is
        crops = crop_persons([_frame(points, mark=[k])], INPUT)
        assert crops.images.shape == (1, 128, 96, 3)
        image = crops.images[0, :, :, 0]
        ys, xs = np.nonzero(image >= image.max() - 1e-3)
        np.testing.assert_allclose([xs.mean(), ys.mean()], crops.keypoints[0, k], atol=1.0)


def test_persons_without_a_weighted_keypoint_are_not_cropped():
    with pytest.raises(ValueError, match="no person"):
        crop_persons([_frame(_points(), weight=0.0)], INPUT)


def test_a_mirrored_crop_swaps_left_and_right():
    crops = crop_persons([_frame(_points())], INPUT)
    both = crops.mirrored()
    assert len(both) == 2
    left_wrist, right_wrist = COCO_KEYPOINTS.index("left_wrist"), COCO_KEYPOINTS.index("right_wrist")
    x, y = crops.keypoints[0, right_wrist]
    np.testing.assert_allclose(both.keypoints[1, left_wrist], [INPUT[0] - 1 - x, y])
    np.testing.assert_array_equal(both.images[1], crops.images[0][:, ::-1])


def test_the_augmentation_rotates_in_pixels_not_in_normalised_coordinates():
    generator = torch.Generator().manual_seed(0)
    identity = _random_affines(4, generator, 0.0, 0.0, INPUT[0] / INPUT[1])
    np.testing.assert_allclose(identity.numpy(), np.tile([[1, 0, 0], [0, 1, 0]], (4, 1, 1)), atol=1e-6)
    theta = _random_affines(1, generator, 0.0, 45.0, INPUT[0] / INPUT[1])[0].numpy()
    # a point at pixel offset (0, 40) from the centre samples a point at the same distance: a rotation, no shear
    to_normalised = np.diag([2 / INPUT[0], 2 / INPUT[1]])
    sampled = np.linalg.inv(to_normalised) @ theta[:, :2] @ to_normalised @ np.array([0.0, 40.0])
    assert np.linalg.norm(sampled) == pytest.approx(40.0, rel=1e-5)
    assert math.degrees(math.atan2(abs(sampled[0]), sampled[1])) <= 45.0 + 1e-6


@pytest.fixture(scope="module")
def student():
    from orpose.configs.schema import load_teacher_config
    from orpose.training.keypoint_student import KeypointStudent

    return KeypointStudent(load_teacher_config("tiny").keypoints, seed=0)


def test_a_soft_keypoint_gets_its_gaussian_and_its_confidence_as_weight(student):
    points = np.full((1, 17, 2), 48.0)
    points[0, :, 1] = 64.0
    weights = np.zeros((1, 17))
    weights[0, 0], weights[0, 1] = 0.3, 1.0  # mmpose's GenerateTarget would draw nothing for 0.3
    heatmaps, loss_weights = student._targets(PersonCrops(np.zeros((1, 128, 96, 3), np.float32), points, weights))
    assert heatmaps[0, 0].max() == pytest.approx(1.0) and heatmaps[0, 1].max() == pytest.approx(1.0)
    assert heatmaps[0, 2].max() == 0.0
    np.testing.assert_allclose(loss_weights[0, :3].numpy(), [0.3, 1.0, 0.0])


def _truth(frames):
    images, annotations = [], []
    for i, frame in enumerate(frames):
        images.append({"id": i, "frame_id": frame.frame_id, "width": 640, "height": 480})
        for box, points in zip(frame.boxes, frame.keypoints):
            x1, y1, x2, y2 = box
            annotations.append(
                {
                    "id": len(annotations) + 1, "image_id": i, "category_id": 1, "iscrowd": 0,
                    "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1) * 0.5,
                    "keypoints": np.concatenate([points, np.full((17, 1), 2.0)], 1).ravel().tolist(),
                    "num_keypoints": 17,
                }
            )  # fmt: skip
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}


def _predictor(offset: float):
    from orpose.teachers.keypoints import PersonKeypoints

    def predict(images, boxes):
        return [
            PersonKeypoints(
                np.concatenate([frame.keypoints + offset, np.ones((len(frame.keypoints), 17, 1))], axis=2),
                np.zeros((len(frame.keypoints), 17)),
            )
            for frame in FRAMES
        ]

    return predict


FRAMES = [_frame(_points())]


def test_the_2d_score_of_the_ground_truth_is_perfect_and_a_shift_costs_ap():
    from orpose.pipeline.probe import _score_2d

    truth = _truth(FRAMES)
    perfect = _score_2d(_predictor(0.0), FRAMES, truth)
    assert perfect["AP"] == pytest.approx(1.0) and perfect["PCK"] == pytest.approx(1.0)
    assert set(perfect["PCK_groups"]) == {"head", "shoulders", "elbows", "wrists", "hips", "knees", "ankles"}
    shifted = _score_2d(_predictor(8.0), FRAMES, truth)  # the probe's damaged 2D set
    assert shifted["AP"] < 0.9 and shifted["PCK"] == pytest.approx(1.0)  # within 0.2 of the extent, not in OKS


def test_the_damaged_sets_do_what_they_say():
    from orpose.pipeline.probe import DEPTH_SCALE, SHIFT_PX, _scale_about_centre, _shift_2d

    frame = FRAMES[0]
    np.testing.assert_allclose(_shift_2d(frame).keypoints, frame.keypoints + SHIFT_PX)
    centre = np.array([[[319.5, 239.5]]])
    moved = _scale_about_centre(FrameLabels("c", frame.image, frame.boxes, centre, frame.weights))
    np.testing.assert_allclose(moved.keypoints, centre)  # the centre stays
    scaled = _scale_about_centre(frame).keypoints
    np.testing.assert_allclose(scaled - centre, (frame.keypoints - centre) * DEPTH_SCALE)
