"""Which person in one view is which in another, for the views of one instant.

Two persons of two views are the same person when their 2D keypoints agree with the rig's geometry: the pair's
keypoints, triangulated from those two views alone, reproject onto both within a few pixels (epipolar
consistency, measured in pixels). Pairs are taken best first and their groups joined when the result holds at
most one person per view and every pair of its members agrees (complete linkage: a person cannot join a group
through one member it agrees with while it disagrees with another); a person that agrees with no other view
stays a group of one. Only 2D keypoints are used: frames without depth are associated alike.

A teacher can label one person twice in one view (two boxes that survived the merge). Such a duplicate agrees with
the person's other views as well as the original does, and taken first it would keep the original out of its
group: duplicates (`duplicate_of`: the same skeleton within a tenth of its size) take no part, and stay groups of
one. Measured on a synthetic 3-camera scene labelled by the tiny teacher (docs/fusion.md): persons seen by two or
more views grouped together rose from 37 of 58 to the figure there.
"""

from __future__ import annotations

from itertools import combinations
from typing import Sequence

import numpy as np

from orpose.fusion.triangulation import ViewCamera, camera_projections, normalized, reprojection_px, triangulate_dlt

__all__ = ["pair_disagreement", "duplicate_of", "associate"]


def pair_disagreement(
    a: np.ndarray, b: np.ndarray, camera_a: ViewCamera, camera_b: ViewCamera, min_confidence: float = 0.3,
    min_joints: int = 4,
) -> float:  # fmt: skip
    """Median reprojection error (px) of two persons' keypoints (17, 3: x, y, confidence) triangulated from their
    two views, over the joints both see with at least `min_confidence`; inf with fewer than `min_joints` such
    joints or a point behind either camera."""
    both = (a[:, 2] >= min_confidence) & (b[:, 2] >= min_confidence)
    if both.sum() < min_joints:
        return float("inf")
    uv = np.stack([a[both, :2], b[both, :2]])
    xn = np.stack([normalized(uv[0], camera_a.intrinsics), normalized(uv[1], camera_b.intrinsics)])
    points = triangulate_dlt(xn, np.ones(uv.shape[:2]), camera_projections([camera_a, camera_b]))
    errors = reprojection_px(points, uv, [camera_a, camera_b])
    if not np.isfinite(errors).all():  # behind a camera: no real point explains both
        return float("inf")
    return float(np.median(errors.max(axis=0)))


def duplicate_of(
    persons: np.ndarray, min_confidence: float = 0.3, max_distance: float = 0.1, min_joints: int = 4
) -> np.ndarray:
    """For each person of one view (P, 17, 3), the person it duplicates, or itself. Two persons are one when the
    median distance of the keypoints both see with `min_confidence` is under `max_distance` of the skeleton's
    size (the diagonal of those keypoints' extent); the one with the larger confidence sum is kept."""
    persons = np.asarray(persons, dtype=np.float64)
    kept = np.arange(len(persons))
    order = np.argsort(-np.nansum(persons[:, :, 2], axis=1), kind="stable") if len(persons) else kept
    for rank, p in enumerate(order):
        for q in order[:rank]:
            if kept[q] != q:
                continue  # compare with the persons kept so far only
            both = (persons[p, :, 2] >= min_confidence) & (persons[q, :, 2] >= min_confidence)
            if both.sum() < min_joints:
                continue
            points = persons[q, both, :2]
            size = np.linalg.norm(points.max(axis=0) - points.min(axis=0))
            distance = np.median(np.linalg.norm(persons[p, both, :2] - points, axis=1))
            if size > 0 and distance < max_distance * size:
                kept[p] = q
                break
    return kept


def associate(
    keypoints: Sequence[np.ndarray], cameras: Sequence[ViewCamera], max_disagreement_px: float = 25.0
) -> list[list[tuple[int, int]]]:
    """Groups of (view, person) of one instant: keypoints[v] is view v's (P_v, 17, 3). Every person of every
    view is in exactly one group; a group holds at most one person per view. Groups come ordered by their first
    member."""
    group_of: dict[tuple[int, int], int] = {}
    groups: list[set[tuple[int, int]]] = []
    for v, persons in enumerate(keypoints):
        for p in range(len(persons)):
            group_of[(v, p)] = len(groups)
            groups.append({(v, p)})
    agree: set[frozenset] = set()
    pairs = []
    originals = [np.flatnonzero(duplicate_of(persons) == np.arange(len(persons))) for persons in keypoints]
    for i, j in combinations(range(len(keypoints)), 2):
        for p in originals[i]:
            for q in originals[j]:
                a, b = keypoints[i][p], keypoints[j][q]
                score = pair_disagreement(a, b, cameras[i], cameras[j])
                if score <= max_disagreement_px:
                    pairs.append((score, (i, int(p)), (j, int(q))))
                    agree.add(frozenset({(i, int(p)), (j, int(q))}))
    for _, first, second in sorted(pairs):
        g, h = group_of[first], group_of[second]
        if g == h or {v for v, _ in groups[g]} & {v for v, _ in groups[h]}:
            continue  # already together, or joining would put two persons of one view in a group
        if any(frozenset({m, n}) not in agree for m in groups[g] for n in groups[h]):
            continue  # a member of one group disagrees with a member of the other
        for member in groups[h]:
            group_of[member] = g
        groups[g] |= groups[h]
        groups[h] = set()
    return sorted((sorted(group) for group in groups if group), key=lambda group: group[0])
