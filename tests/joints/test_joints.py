"""Joint conventions with hand-made answers."""

import numpy as np

from orpose.joints import COCO_FLIP_PAIRS, COCO_KEYPOINTS, H36M_JOINTS, coco_to_h36m_positions, flip_permutation


def test_flip_permutation_swaps_left_and_right_and_is_an_involution():
    perm = flip_permutation()
    for a, b in COCO_FLIP_PAIRS:
        assert COCO_KEYPOINTS[a].replace("left", "right") == COCO_KEYPOINTS[b]
        assert perm[a] == b and perm[b] == a
    np.testing.assert_array_equal(perm[perm], np.arange(17))
    assert perm[0] == 0


def test_coco_to_h36m_on_a_hand_pose():
    coco = np.zeros((17, 2))
    coco[COCO_KEYPOINTS.index("left_hip")] = (10, 100)
    coco[COCO_KEYPOINTS.index("right_hip")] = (-10, 100)
    coco[COCO_KEYPOINTS.index("left_shoulder")] = (20, 40)
    coco[COCO_KEYPOINTS.index("right_shoulder")] = (-20, 40)
    coco[COCO_KEYPOINTS.index("left_eye")] = (4, 10)
    coco[COCO_KEYPOINTS.index("right_eye")] = (-4, 12)
    coco[COCO_KEYPOINTS.index("nose")] = (0, 15)
    coco[COCO_KEYPOINTS.index("right_wrist")] = (-30, 90)
    h36m = coco_to_h36m_positions(coco)

    def get(name):
        return h36m[H36M_JOINTS.index(name)]

    np.testing.assert_array_equal(get("pelvis"), (0, 100))
    np.testing.assert_array_equal(get("thorax"), (0, 40))
    np.testing.assert_array_equal(get("spine"), (0, 70))
    np.testing.assert_array_equal(get("head"), (0, 11))
    np.testing.assert_array_equal(get("neck_nose"), (0, 15))
    np.testing.assert_array_equal(get("right_wrist"), (-30, 90))
    np.testing.assert_array_equal(get("left_hip"), (10, 100))


def test_sides_of_joints_and_limbs_follow_the_names():
    from orpose.joints import COCO_KEYPOINTS, COCO_SKELETON, H36M_JOINTS, H36M_SKELETON, joint_sides, limb_sides

    sides = joint_sides(COCO_KEYPOINTS)
    assert sides[0] == "centre" and sides[5] == "left" and sides[6] == "right"
    assert sides.count("left") == sides.count("right") == 8
    limbs = dict(zip(COCO_SKELETON, limb_sides(COCO_SKELETON, COCO_KEYPOINTS)))
    assert limbs[(15, 13)] == "left"  # left ankle - left knee
    assert limbs[(8, 10)] == "right"  # right elbow - right wrist
    assert limbs[(5, 6)] == limbs[(11, 12)] == limbs[(0, 1)] == "centre"  # across the body, nose-eye
    h36m = dict(zip(H36M_SKELETON, limb_sides(H36M_SKELETON, H36M_JOINTS)))
    assert h36m[(1, 2)] == "right" and h36m[(11, 12)] == "left" and h36m[(0, 7)] == "centre"
