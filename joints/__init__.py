"""Joint conventions shared by every part: COCO-17, Human3.6M-17 (mmpose order), MVOR-10.

Names, flip pairs and drawing edges live here once; every other module imports them.
Conversions between sets are pure functions of arrays shaped (..., 17, D).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "COCO_KEYPOINTS",
    "COCO_FLIP_PAIRS",
    "COCO_SKELETON",
    "COCO_SIGMAS",
    "H36M_JOINTS",
    "H36M_FLIP_PAIRS",
    "SURFACE_OFFSET_MM",
    "MVOR_JOINTS",
    "H36M_SKELETON",
    "coco_to_h36m_positions",
    "coco_to_h36m_confidences",
    "flip_permutation",
    "joint_sides",
    "limb_sides",
]

COCO_KEYPOINTS = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
# Drawing edges, 0-based (the 1-based list of the COCO annotation file's `skeleton`, minus one).
COCO_SKELETON = (
    (15, 13),
    (13, 11),
    (16, 14),
    (14, 12),
    (11, 12),
    (5, 11),
    (6, 12),
    (5, 6),
    (5, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (1, 2),
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
)
# Per-keypoint OKS sigmas of the COCO keypoint benchmark (cocoeval.py).
COCO_SIGMAS = (
    np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89])
    / 10.0
)

# How far in front of each COCO joint the body surface a camera sees there lies (mm): the limb's
# half-thickness for an average adult (face joints sit on the surface). Used to compare measured
# depth with 3D joints; approximate by nature, and configurable where it is used.
SURFACE_OFFSET_MM = np.array([10, 10, 10, 15, 15, 80, 80, 45, 45, 35, 35, 90, 90, 60, 60, 45, 45], dtype=np.float64)

H36M_JOINTS = (
    "pelvis",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "spine",
    "thorax",
    "neck_nose",
    "head",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
)
H36M_SKELETON = (
    (0, 1),
    (1, 2),
    (2, 3),
    (0, 4),
    (4, 5),
    (5, 6),
    (0, 7),
    (7, 8),
    (8, 9),
    (9, 10),
    (8, 11),
    (11, 12),
    (12, 13),
    (8, 14),
    (14, 15),
    (15, 16),
)
# left/right pairs of H36M_JOINTS (for flipping 3D poses)
H36M_FLIP_PAIRS = ((1, 4), (2, 5), (3, 6), (11, 14), (12, 15), (13, 16))
MVOR_JOINTS = (
    "head",
    "neck",
    "left_shoulder",
    "right_shoulder",
    "left_hip",
    "right_hip",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
)

# H36M joints copied from one COCO joint: H36M index -> COCO index.
_H36M_FROM_COCO = {1: 12, 2: 14, 3: 16, 4: 11, 5: 13, 6: 15, 9: 0, 11: 5, 12: 7, 13: 9, 14: 6, 15: 8, 16: 10}


def coco_to_h36m_positions(coco: np.ndarray) -> np.ndarray:
    """COCO-17 positions (..., 17, D) -> Human3.6M-17 positions (..., 17, D).

    Derived joints (the rule mmpose's pose-lifter demo uses): pelvis = mid-hips, thorax =
    mid-shoulders, spine = mid(pelvis, thorax), neck/nose = nose, head = mid-eyes.
    """
    coco = np.asarray(coco)
    if coco.shape[-2] != 17:
        raise ValueError(f"expected 17 COCO joints on axis -2, got shape {coco.shape}")
    h36m = np.empty_like(coco)
    for h, c in _H36M_FROM_COCO.items():
        h36m[..., h, :] = coco[..., c, :]
    h36m[..., 0, :] = (coco[..., 11, :] + coco[..., 12, :]) / 2
    h36m[..., 8, :] = (coco[..., 5, :] + coco[..., 6, :]) / 2
    h36m[..., 7, :] = (h36m[..., 0, :] + h36m[..., 8, :]) / 2
    h36m[..., 10, :] = (coco[..., 1, :] + coco[..., 2, :]) / 2
    return h36m


def coco_to_h36m_confidences(coco_conf: np.ndarray) -> np.ndarray:
    """COCO-17 confidences (..., 17) -> Human3.6M-17 confidences (..., 17).

    A derived joint is as reliable as its weakest source: pelvis = min(hips), thorax =
    min(shoulders), spine = min(pelvis, thorax), head = min(eyes); copied joints keep theirs.
    So a hard threshold on the H36M confidences drops a derived joint whenever a source is dropped.
    """
    coco_conf = np.asarray(coco_conf)
    h36m = np.empty_like(coco_conf)
    for h, c in _H36M_FROM_COCO.items():
        h36m[..., h] = coco_conf[..., c]
    h36m[..., 0] = np.minimum(coco_conf[..., 11], coco_conf[..., 12])
    h36m[..., 8] = np.minimum(coco_conf[..., 5], coco_conf[..., 6])
    h36m[..., 7] = np.minimum(h36m[..., 0], h36m[..., 8])
    h36m[..., 10] = np.minimum(coco_conf[..., 1], coco_conf[..., 2])
    return h36m


def flip_permutation(num_joints: int = 17, pairs=COCO_FLIP_PAIRS) -> np.ndarray:
    """Index array that swaps left and right joints: `flipped = joints[..., perm, :]`."""
    perm = np.arange(num_joints)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


def joint_sides(names: tuple[str, ...]) -> tuple[str, ...]:
    """'left', 'right' or 'centre' for each joint name (the person's own left, as the names say)."""
    return tuple(next((side for side in ("left", "right") if name.startswith(side + "_")), "centre") for name in names)


def limb_sides(skeleton: tuple[tuple[int, int], ...], names: tuple[str, ...]) -> tuple[str, ...]:
    """The side of each drawing edge: 'left' or 'right' when both its joints are on that side, else 'centre'
    (shoulder-to-shoulder, hip-to-hip, the face)."""
    sides = joint_sides(names)
    return tuple(sides[a] if sides[a] == sides[b] else "centre" for a, b in skeleton)
