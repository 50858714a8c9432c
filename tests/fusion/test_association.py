"""Association (issue 44): persons of the views of one instant grouped by the agreement of their 2D keypoints
with the rig's geometry. Known answers on a synthetic rig: shuffled persons are grouped back, a person seen by
one view stays alone, no group holds two persons of one view, and a person that agrees with one member of a
group but not another does not join it."""

import numpy as np

from orpose.fusion.association import associate, pair_disagreement
from tests.fusion.test_triangulation import observe, rig, skeleton


def keypoints_of(points: np.ndarray, cameras, noise_px: float = 0.0, seed: int = 0) -> np.ndarray:
    uv = observe(points, cameras) + np.random.default_rng(seed).normal(0, noise_px, size=(len(cameras), 17, 2))
    return np.concatenate([uv, np.ones((len(cameras), 17, 1))], axis=-1)  # (V, 17, 3)


def test_shuffled_persons_are_grouped_back():
    cameras = rig(3)
    people = [skeleton(seed) + offset for seed, offset in ((0, [-900, 0, 0]), (1, [0, 800, 0]), (2, [900, -300, 0]))]
    views = [keypoints_of(p, cameras, noise_px=1.0, seed=k) for k, p in enumerate(people)]  # person -> (V, 17, 3)
    order = [[2, 0, 1], [1, 2, 0], [0, 1]]  # view 2 does not see person 2
    keypoints = [np.stack([views[person][v] for person in order[v]]) for v in range(3)]
    alone = keypoints_of(skeleton(9) + [0, -900, 0], cameras)[0]  # only view 0 sees this one
    keypoints[0] = np.concatenate([keypoints[0], alone[None]])
    groups = associate(keypoints, cameras)
    expected = [
        [(0, 1), (1, 2), (2, 0)],  # person 0
        [(0, 2), (1, 0), (2, 1)],  # person 1
        [(0, 0), (1, 1)],  # person 2
        [(0, 3)],  # the one seen once
    ]
    assert sorted(groups) == sorted(expected)
    for group in groups:
        assert len({v for v, _ in group}) == len(group)


def test_disagreement_is_small_for_one_person_and_large_for_two():
    cameras = rig(3)[:2]  # 120 degrees apart
    a, b = keypoints_of(skeleton(0), cameras, noise_px=1.0), keypoints_of(skeleton(1) + [0, 900, 0], cameras)
    assert pair_disagreement(a[0], a[1], cameras[0], cameras[1]) < 3.0
    assert pair_disagreement(a[0], b[1], cameras[0], cameras[1]) > 25.0
    hidden = a[0].copy()
    hidden[:, 2] = 0.0  # no joint confident enough: no evidence either way
    assert pair_disagreement(hidden, a[1], cameras[0], cameras[1]) == float("inf")


def test_a_person_joins_a_group_only_if_it_agrees_with_every_member():
    """Complete linkage: C agrees with A (views 0, 1) but not with B, which A agrees with; C stays apart."""
    import orpose.fusion.association as association

    scores = {frozenset({(0, 0), (1, 0)}): 1.0, frozenset({(0, 0), (2, 0)}): 2.0, frozenset({(1, 0), (2, 0)}): 99.0}

    def fake(a, b, camera_a, camera_b, **_):
        return scores[frozenset({(int(a[0, 0]), 0), (int(b[0, 0]), 0)})]

    keypoints = [np.full((1, 17, 3), float(v)) for v in range(3)]  # the view's index, as fake's key
    original = association.pair_disagreement
    association.pair_disagreement = fake
    try:
        groups = associate(keypoints, [None, None, None], max_disagreement_px=25.0)
    finally:
        association.pair_disagreement = original
    assert groups == [[(0, 0), (1, 0)], [(2, 0)]]


def test_a_person_labelled_twice_in_one_view_does_not_keep_the_original_out_of_its_group():
    """A teacher's duplicate (the same skeleton a pixel off, a little less confident) agrees with the other views
    as well as the original: it stays a group of one, and the original joins its person's other views."""
    from orpose.fusion.association import duplicate_of

    cameras = rig(3)
    person, other = keypoints_of(skeleton(0), cameras, 2.0), keypoints_of(skeleton(1) + [0, 900, 0], cameras, 1.0)
    copy = keypoints_of(skeleton(0), cameras)[0]  # exact: it agrees with the other views better than the original
    copy[:, 2] *= 0.9
    # view 0: the duplicate, the person, another person (without the rule the duplicate takes the person's group)
    keypoints = [np.stack([copy, person[0], other[0]]), np.stack([person[1], other[1]]), np.stack([person[2]])]
    assert duplicate_of(keypoints[0]).tolist() == [1, 1, 2]
    groups = associate(keypoints, cameras)
    assert sorted(groups) == [[(0, 0)], [(0, 1), (1, 0), (2, 0)], [(0, 2), (1, 1)]]
