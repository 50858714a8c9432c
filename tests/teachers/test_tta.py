"""TTA maths with hand-computed answers."""

import numpy as np
import pytest
import torch

from orpose.teachers.tta import (
    DetectionView,
    align_heatmaps,
    box_iou,
    boxes_from_view,
    boxes_to_view,
    crop_affine,
    decode_heatmaps,
    detection_views,
    flip_affine,
    merge_box_voting,
    merge_nms,
    merge_wbf,
)


def test_views_follow_mmdet_keep_ratio_resize():
    views = detection_views(640, 480, (400, 800), max_side=1000, flip=True)
    assert [(v.width, v.height, v.flip) for v in views] == [
        (533, 400, False),
        (533, 400, True),
        (1000, 750, False),
        (1000, 750, True),
    ]
    assert views[0].scale_x == pytest.approx(533 / 640) and views[0].scale_y == pytest.approx(400 / 480)


def test_box_mapping_known_answer_and_round_trip():
    view = DetectionView(width=200, height=100, scale_x=2.0, scale_y=2.0, flip=True)
    np.testing.assert_allclose(boxes_to_view(np.array([[10.0, 20, 30, 40]]), view), [[140, 40, 180, 80]])
    rng = np.random.default_rng(0)
    boxes = np.sort(rng.uniform(0, 640, size=(50, 2, 2)), axis=1).reshape(50, 4)[:, [0, 2, 1, 3]]
    for v in detection_views(640, 480, (333, 480, 1111), 4000, True):
        np.testing.assert_allclose(boxes_from_view(boxes_to_view(boxes, v), v), boxes, rtol=0, atol=1e-9)


def test_flip_is_its_own_inverse_on_the_frame():
    view = DetectionView(100, 50, 1.0, 1.0, True)
    np.testing.assert_array_equal(boxes_from_view(np.array([[0.0, 0, 10, 50]]), view), [[90, 0, 100, 50]])


def test_iou():
    assert box_iou(np.array([0, 0, 10, 10]), np.array([5, 0, 15, 10]))[0, 0] == pytest.approx(50 / 150)
    assert box_iou(np.array([0, 0, 1, 1]), np.array([2, 2, 3, 3]))[0, 0] == 0


BOXES = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], dtype=float)
SCORES = np.array([0.9, 0.6, 0.8])


def test_nms_keeps_the_best_of_each_group():
    boxes, scores, rep = merge_nms(BOXES, SCORES, iou=0.5)
    np.testing.assert_array_equal(rep, [0, 2])
    np.testing.assert_array_equal(boxes, BOXES[[0, 2]])


def test_box_voting_averages_by_score():
    boxes, scores, rep = merge_box_voting(BOXES, SCORES, iou=0.5)
    np.testing.assert_allclose(boxes[0], [0.6 / 1.5, 0, 10 + 0.6 / 1.5, 10])
    np.testing.assert_allclose(scores, [0.9, 0.8])
    np.testing.assert_array_equal(boxes[1], BOXES[2])


def test_wbf_scales_scores_by_how_many_views_agree():
    boxes, scores, rep = merge_wbf(BOXES, SCORES, iou=0.5, num_views=2)
    np.testing.assert_allclose(boxes[0], [0.4, 0, 10.4, 10])
    np.testing.assert_allclose(scores, [(0.9 + 0.6) / 2, 0.8 / 2])  # the lone box was seen in 1 of 2 views


def gaussian_heatmaps(points: np.ndarray, size=(48, 64), sigma=2.0) -> np.ndarray:
    """(N, K, 2) heatmap coordinates -> (N, K, H, W) unnormalised Gaussians."""
    w, h = size
    ys, xs = np.mgrid[0:h, 0:w]
    return np.exp(-((xs - points[..., 0, None, None]) ** 2 + (ys - points[..., 1, None, None]) ** 2) / (2 * sigma**2))


def test_dark_decoding_recovers_a_gaussian_centre():
    truth = np.array([[[20.3, 30.7], [5.5, 44.2]]])
    locations, values = decode_heatmaps(gaussian_heatmaps(truth))
    np.testing.assert_allclose(locations, truth, atol=0.05)
    assert values.min() > 0.8


def test_flipped_heatmap_aligns_back_exactly():
    """A keypoint seen in a mirrored crop: resampling onto the unflipped crop's grid puts it back
    where it is, with no one-pixel shift (mmpose's shift_heatmap is an approximation of this)."""
    heat_affine = np.diag([0.25, 0.25]) @ crop_affine(np.array([100.0, 80.0]), np.array([192.0, 256.0]), (192, 256))
    flipped_affine = np.diag([0.25, 0.25]) @ flip_affine(
        crop_affine(np.array([100.0, 80.0]), np.array([192.0, 256.0]), (192, 256)), 192
    )
    image_point = np.array([117.3, 64.9, 1.0])
    in_flipped = flipped_affine @ image_point
    heatmap = torch.from_numpy(gaussian_heatmaps(in_flipped[None, None])).float()
    aligned, covered = align_heatmaps(heatmap, flipped_affine[None], heat_affine[None])
    location, _ = decode_heatmaps(aligned.numpy())
    np.testing.assert_allclose(location[0, 0], heat_affine @ image_point, atol=0.05)
    assert covered.mean() > 0.9


def test_multi_scale_average_recovers_the_keypoint_within_half_a_pixel():
    center, size = np.array([320.0, 240.0]), np.array([150.0, 200.0])
    keypoint = np.array([341.7, 198.2, 1.0])
    affines = []
    for scale in (1.0, 1.15, 1.3):
        affine = np.diag([0.25, 0.25]) @ crop_affine(center, size * scale, (192, 256))
        affines.append(affine)
        affines.append(np.diag([0.25, 0.25]) @ flip_affine(crop_affine(center, size * scale, (192, 256)), 192))
    affines = np.array(affines)
    heatmaps = torch.from_numpy(gaussian_heatmaps(np.array([[a @ keypoint] for a in affines]))).float()
    aligned, covered = align_heatmaps(heatmaps, affines, np.repeat(affines[:1], len(affines), axis=0))
    mean = (aligned * covered).sum(0, keepdim=True) / covered.sum(0, keepdim=True).clamp(min=1)
    location, _ = decode_heatmaps(mean.numpy())
    back = np.linalg.inv(np.vstack([affines[0], [0, 0, 1]]))[:2]
    recovered = back[:, :2] @ location[0, 0] + back[:, 2]
    assert np.linalg.norm(recovered - keypoint[:2]) < 0.5
