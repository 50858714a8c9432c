"""Lifter input rules: joint conversion, confidences, normalisation, what dropped joints become."""

import numpy as np
import pytest

from orpose.configs.schema import load_teacher_config
from orpose.joints import coco_to_h36m_confidences
from orpose.teachers.lifter import Lifter, denormalise_lifted, normalise_for_lifter
from orpose.teachers.mm import load_mm_config

CODEC = load_mm_config("mmpose::body_3d_keypoint/image_pose_lift/h36m/image-pose-lift_tcn_8xb64-200e_h36m.py").codec
MEAN, STD = np.array(CODEC["keypoints_mean"]), np.array(CODEC["keypoints_std"])


def test_derived_joint_confidence_is_the_weakest_source():
    conf = np.linspace(0.1, 0.9, 17)
    h36m = coco_to_h36m_confidences(conf)
    assert h36m[0] == pytest.approx(min(conf[11], conf[12]))  # pelvis
    assert h36m[8] == pytest.approx(min(conf[5], conf[6]))  # thorax
    assert h36m[7] == pytest.approx(min(h36m[0], h36m[8]))  # spine
    assert h36m[10] == pytest.approx(min(conf[1], conf[2]))  # head
    assert h36m[9] == conf[0] and h36m[16] == conf[10]


def test_the_h36m_mean_pose_in_h36m_framing_normalises_to_zero():
    box = np.array([[328.0, 227.0, 728.0, 627.0]])  # centre (528, 427), side 400: the identity framing
    np.testing.assert_allclose(normalise_for_lifter(MEAN[None], box, (528, 427), 400, MEAN, STD), 0, atol=1e-12)


def test_normalisation_round_trips():
    rng = np.random.default_rng(0)
    pose = rng.uniform(100, 500, size=(3, 17, 2))
    boxes = np.array([[90, 80, 520, 510], [0, 0, 640, 480], [200, 100, 300, 400]], dtype=float)
    normalised = normalise_for_lifter(pose, boxes, (528, 427), 400, MEAN, STD)
    center = (boxes[:, :2] + boxes[:, 2:]) / 2
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    back = ((normalised * STD + MEAN) - (528, 427)) / 400 * side[:, None, None] + center[:, None]
    np.testing.assert_allclose(back, pose, atol=1e-9)


def test_denormalised_output_is_root_relative_millimetres():
    target_mean, target_std = np.array(CODEC["target_mean"]), np.array(CODEC["target_std"])
    out = denormalise_lifted(np.zeros((2, 16, 3)), target_mean, target_std)
    assert out.shape == (2, 17, 3)
    np.testing.assert_array_equal(out[:, 0], 0)
    np.testing.assert_allclose(out[0, 1:], target_mean.reshape(16, 3) * 1000)  # the codec stores (1, 16, 3)


@pytest.fixture(scope="module")
def tiny_lifter(tiny_weights):
    cfg = load_teacher_config("tiny", {"weights_dir": str(tiny_weights)})
    from orpose.configs.schema import CONFIG_DIR

    return Lifter(cfg.lifter, tiny_weights / cfg.lifter.checkpoint, __import__("torch").device("cpu"), CONFIG_DIR)


def test_hard_input_sets_dropped_joints_to_the_mean_pose(tiny_lifter):
    rng = np.random.default_rng(1)
    keypoints = np.concatenate([rng.uniform(100, 400, (2, 17, 2)), np.ones((2, 17, 1))], axis=-1)
    boxes = np.array([[90, 90, 410, 410]] * 2, dtype=float)
    keep = np.ones((2, 17), dtype=bool)
    keep[0, 9] = False  # left wrist -> H36M 13
    keep[1, 11] = False  # left hip -> H36M 4, and pelvis (0) and spine (7), which derive from it
    soft = tiny_lifter.prepare(keypoints, boxes).reshape(2, 17, 2)
    hard = tiny_lifter.prepare(keypoints, boxes, keep).reshape(2, 17, 2)
    dropped = {0: [13], 1: [0, 4, 7]}
    for person, joints in dropped.items():
        np.testing.assert_array_equal(hard[person, joints], 0.0)
        others = [j for j in range(17) if j not in joints]
        np.testing.assert_array_equal(hard[person, others], soft[person, others])
    assert tiny_lifter(keypoints, boxes, keep).shape == (2, 17, 3)


def test_poses_per_forward_chunks_give_the_same_poses(tiny_weights, tiny_lifter):
    """A run's poses go through the lifter `poses_per_forward` at a time: the chunking (here 3 per
    call for 10 poses: 3 + 3 + 3 + 1) must not change a number."""
    import dataclasses

    import torch

    from orpose.configs.schema import CONFIG_DIR

    rng = np.random.default_rng(2)
    keypoints = np.concatenate([rng.uniform(100, 400, (10, 17, 2)), rng.uniform(0.2, 1, (10, 17, 1))], axis=-1)
    boxes = np.tile([90.0, 90.0, 410.0, 410.0], (10, 1))
    chunked = Lifter(
        dataclasses.replace(tiny_lifter.spec, poses_per_forward=3),
        tiny_weights / tiny_lifter.spec.checkpoint,
        torch.device("cpu"),
        CONFIG_DIR,
    )
    whole = tiny_lifter(keypoints, boxes)
    np.testing.assert_allclose(chunked(keypoints, boxes), whole, atol=1e-3)  # float32 sums by batch size: 2e-4 mm
    assert np.abs(whole[:, 1:]).max() > 1.0  # the poses say something
