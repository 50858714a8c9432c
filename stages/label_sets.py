"""Soft and hard label sets (Srivastav et al. 2020, seed 000 section 2.2), as pure functions.

- S2D: every keypoint with its confidence, (P, 17, 3).
- H2D: only keypoints with confidence > `keypoint_score`; a skeleton with fewer than
  `min_keypoints` such keypoints is dropped from the hard set. Stored as S2D plus a (P, 17)
  boolean mask and a (P,) boolean `hard_valid`, so no information is copied twice.
- S3D = lift(S2D); H3D = lift(H2D) (the lifter decides what dropped joints become).
"""

from __future__ import annotations

import numpy as np

__all__ = ["hard_keypoints"]


def hard_keypoints(keypoints: np.ndarray, keypoint_score: float, min_keypoints: int) -> tuple[np.ndarray, np.ndarray]:
    """(P, 17, 3) keypoints -> hard mask (P, 17) and hard_valid (P,).

    A keypoint is hard when its confidence is strictly above `keypoint_score` (seed 002: "score >
    0.35"); a skeleton is in the hard set when at least `min_keypoints` of its keypoints are hard.
    Keypoints of a dropped skeleton are all marked not hard.
    """
    keypoints = np.asarray(keypoints).reshape(-1, 17, 3)
    mask = keypoints[..., 2] > keypoint_score
    valid = mask.sum(axis=1) >= min_keypoints
    return mask & valid[:, None], valid
