"""Bodies: fixed bone lengths, feet on the floor, left and right where a person has them."""

import numpy as np
import pytest

from orpose.synth.body import sample_person


@pytest.mark.parametrize("seed", range(20))
def test_bones_feet_and_sides(seed):
    rng = np.random.default_rng(seed)
    yaw = rng.uniform(0, 360)
    person = sample_person(rng, np.array([100.0, -200.0]), yaw)
    j = person.joints

    def bone(a, b):
        return np.linalg.norm(j[a] - j[b])

    assert bone(5, 7) == pytest.approx(bone(6, 8)) and bone(7, 9) == pytest.approx(bone(8, 10))
    assert bone(11, 13) == pytest.approx(bone(12, 14)) and bone(13, 15) == pytest.approx(bone(14, 16))
    assert min(j[15, 2], j[16, 2]) == pytest.approx(75 * bone(11, 12) / 180, rel=1e-6)  # ankle above the floor
    assert j[0, 2] > j[5, 2] > j[11, 2] > j[13, 2] > j[15, 2] - 1  # head above shoulders above hips ...
    # The person's right is +x in their own frame: right-minus-left of the hips points to the right.
    forward = np.array([-np.sin(np.radians(yaw)), np.cos(np.radians(yaw)), 0.0])
    right = np.cross(forward, [0, 0, 1])
    assert (j[12] - j[11]) @ right > 0
    # The face looks forward of the ears: nose in front of the mid-ears along the head's forward axis.
    head_forward = person.head_rotation[:, 1]
    assert (j[0] - (j[3] + j[4]) / 2) @ head_forward > 50
