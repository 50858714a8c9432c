"""The ray caster against hand-computed depths."""

import numpy as np
import pytest

from orpose.frames.calibration import Intrinsics
from orpose.frames.geometry import look_at
from orpose.synth.render import KIND_BOX, KIND_CAPSULE, KIND_ROOM, SceneGeometry, render

INTR = Intrinsics(64, 48, 50.0, 50.0, 32.0, 24.0)
CAMERA = look_at(np.array([0.0, -3000.0, 1000.0]), np.array([0.0, 0.0, 1000.0]))  # looks along +y


def scene(capsules=(), boxes=()):
    return SceneGeometry(
        capsule_a=np.array([c[0] for c in capsules], dtype=float).reshape(-1, 3),
        capsule_b=np.array([c[1] for c in capsules], dtype=float).reshape(-1, 3),
        capsule_radius=np.array([c[2] for c in capsules], dtype=float),
        box_lo=np.array([b[0] for b in boxes], dtype=float).reshape(-1, 3),
        box_hi=np.array([b[1] for b in boxes], dtype=float).reshape(-1, 3),
        room_lo=np.array([-5000.0, -5000.0, 0.0]),
        room_hi=np.array([5000.0, 5000.0, 3000.0]),
    )


def test_empty_room_back_wall_depth():
    result = render(scene(), INTR, CAMERA)
    assert result.kind[24, 32] == KIND_ROOM
    assert result.depth[24, 32] == pytest.approx(8000.0)  # wall at y = 5000, camera at y = -3000
    np.testing.assert_allclose(result.normals[24, 32], [0, -1, 0])


def test_sphere_depth_and_normal_at_the_centre_pixel():
    result = render(scene(capsules=[((0, 0, 1000), (0, 0, 1000), 300.0)]), INTR, CAMERA)
    assert result.kind[24, 32] == KIND_CAPSULE
    assert result.depth[24, 32] == pytest.approx(3000.0 - 300.0)
    np.testing.assert_allclose(result.normals[24, 32], [0, -1, 0], atol=1e-12)
    # An off-centre pixel on the sphere: depth from the exact ray-sphere solution.
    u = 36
    direction = np.array([(u - 32) / 50.0, 0.0, 1.0])  # camera frame
    b = direction @ np.array([0, 0, -3000.0])
    c = 3000.0**2 - 300.0**2
    t = (-b - np.sqrt(b * b - (direction @ direction) * c)) / (direction @ direction)
    assert result.depth[24, u] == pytest.approx(t)


def test_capsule_body_depth_and_occlusion_order():
    rod = ((-2000, 0, 1000), (2000, 0, 1000), 100.0)  # horizontal rod across the view at y = 0
    box = ((-100, -1000, 900), (100, -800, 1100))  # a box in front of its middle
    result = render(scene(capsules=[rod], boxes=[box]), INTR, CAMERA)
    assert result.kind[24, 32] == KIND_BOX and result.depth[24, 32] == pytest.approx(2000.0)
    assert result.kind[24, 50] == KIND_CAPSULE
    # Rod surface along a ray with direction (x, 0, 1): the cylinder y^2 + z^2 = r^2 around x.
    assert result.depth[24, 50] == pytest.approx(3000.0 - 100.0)


def test_room_faces_are_indexed():
    result = render(scene(), INTR, look_at(np.array([0.0, 0.0, 2500.0]), np.array([0.0, 1.0, 0.0])))
    assert result.index[47, 32] == 4  # floor below
    assert result.depth[24, 32] > 0
