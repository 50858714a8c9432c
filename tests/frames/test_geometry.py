"""Camera maths with known answers and round trips."""

import numpy as np
import pytest

from orpose.frames.calibration import Intrinsics
from orpose.frames.geometry import apply_rigid, backproject, invert_rigid, look_at, project

INTR = Intrinsics(640, 480, 500.0, 400.0, 320.0, 240.0)


def test_project_known_answer():
    uv = project(np.array([[100.0, -50.0, 1000.0], [0.0, 0.0, 2000.0]]), INTR)
    np.testing.assert_allclose(uv, [[370.0, 220.0], [320.0, 240.0]])


def test_points_behind_the_camera_are_nan():
    assert np.all(np.isnan(project(np.array([[0.0, 0.0, -5.0]]), INTR)))


def test_backproject_round_trip():
    rng = np.random.default_rng(0)
    points = rng.uniform([-1000, -1000, 500], [1000, 1000, 5000], size=(100, 3))
    np.testing.assert_allclose(backproject(project(points, INTR), points[:, 2], INTR), points, atol=1e-9)


def test_distortion_moves_off_axis_points_only():
    distorted = Intrinsics(640, 480, 500.0, 500.0, 320.0, 240.0, (0.1, 0.0, 0.0, 0.0))
    centre, edge = project(np.array([[0.0, 0.0, 1000.0], [500.0, 0.0, 1000.0]]), distorted)
    np.testing.assert_allclose(centre, [320, 240])
    np.testing.assert_allclose(edge, [320 + 500 * 0.5 * (1 + 0.1 * 0.25), 240])


def test_rigid_inverse_and_look_at():
    transform = look_at(np.array([1000.0, -2000.0, 2500.0]), np.array([0.0, 0.0, 800.0]))
    rotation = transform[:3, :3]
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(invert_rigid(transform) @ transform, np.eye(4), atol=1e-12)
    target_cam = apply_rigid(transform, np.array([0.0, 0.0, 800.0]))
    np.testing.assert_allclose(target_cam[:2], [0, 0], atol=1e-9)  # the target is on the optical axis
    assert target_cam[2] == pytest.approx(np.linalg.norm([1000, -2000, 1700]))
    up_in_image = apply_rigid(transform, np.array([0.0, 0.0, 1800.0])) - target_cam
    assert up_in_image[1] < 0  # world up points up the image (camera y is down)
