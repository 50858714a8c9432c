"""How labels are drawn, once for every picture (`labels show`, `labels report`, `labels export-rerun`).

Limbs and joints are colored by the person's side, as pose tools do: left blue, right orange,
centre (face, across shoulders and hips) green. A person's own color (box, mask outline) comes
from `PERSON_COLORS`, which leaves those three out. Soft keypoints at or below the hard threshold
are hollow, their limbs dashed; limbs between two hard keypoints are drawn thick.
"""

from __future__ import annotations

import numpy as np

from orpose.joints import COCO_KEYPOINTS, COCO_SKELETON, H36M_JOINTS, H36M_SKELETON, joint_sides, limb_sides
from orpose.label_store.schema import DEPTH_HOLE, DEPTH_VALID

__all__ = [
    "SIDE_COLORS",
    "PERSON_COLORS",
    "COCO_LIMB_COLORS",
    "COCO_JOINT_COLORS",
    "H36M_LIMB_COLORS",
    "person_color",
    "draw_skeleton_2d",
    "draw_depth_keypoints",
    "draw_skeleton_3d",
]

SIDE_COLORS = {"left": "#1f77b4", "right": "#ff7f0e", "centre": "#2ca02c"}
PERSON_COLORS = ("#d62728", "#9467bd", "#e377c2", "#8c564b", "#17becf", "#bcbd22", "#7f7f7f", "#000000")
COCO_LIMB_COLORS = tuple(SIDE_COLORS[s] for s in limb_sides(COCO_SKELETON, COCO_KEYPOINTS))
COCO_JOINT_COLORS = tuple(SIDE_COLORS[s] for s in joint_sides(COCO_KEYPOINTS))
H36M_LIMB_COLORS = tuple(SIDE_COLORS[s] for s in limb_sides(H36M_SKELETON, H36M_JOINTS))


def person_color(index: int) -> str:
    return PERSON_COLORS[index % len(PERSON_COLORS)]


def draw_skeleton_2d(ax, keypoints: np.ndarray, hard: np.ndarray, threshold: float, size: float = 18) -> None:
    """A COCO-17 skeleton (17 x 3: x, y, confidence) on matplotlib axes: every soft limb thin
    (dashed when an end is at or below `threshold`), hard limbs thick, confident joints filled."""
    for (a, b), color in zip(COCO_SKELETON, COCO_LIMB_COLORS):
        low = keypoints[a, 2] <= threshold or keypoints[b, 2] <= threshold
        ax.plot(
            keypoints[[a, b], 0],
            keypoints[[a, b], 1],
            color=color,
            linewidth=0.9,
            alpha=0.7,
            linestyle="--" if low else "-",
        )
        if hard[a] and hard[b]:
            ax.plot(keypoints[[a, b], 0], keypoints[[a, b], 1], color=color, linewidth=2.4)
    colors = np.array(COCO_JOINT_COLORS)
    confident = keypoints[:, 2] > threshold
    ax.scatter(
        keypoints[confident, 0],
        keypoints[confident, 1],
        s=size,
        c=list(colors[confident]),
        edgecolors="white",
        linewidths=0.5,
        zorder=3,
    )
    ax.scatter(
        keypoints[~confident, 0],
        keypoints[~confident, 1],
        s=size,
        facecolors="none",
        edgecolors=list(colors[~confident]),
        zorder=3,
    )


def draw_depth_keypoints(ax, uv: np.ndarray, flag: np.ndarray, size: float = 14) -> None:
    """Keypoints carried onto the depth frame (17 x 2, depth pixels): limbs where both ends have a
    reading or a hole, a dot on a valid reading, an x on a depth hole."""
    for (a, b), color in zip(COCO_SKELETON, COCO_LIMB_COLORS):
        if flag[a] <= DEPTH_HOLE and flag[b] <= DEPTH_HOLE:
            ax.plot(uv[[a, b], 0], uv[[a, b], 1], color=color, linewidth=1.0, alpha=0.85)
    colors = np.array(COCO_JOINT_COLORS)
    valid, hole = flag == DEPTH_VALID, flag == DEPTH_HOLE
    ax.scatter(uv[valid, 0], uv[valid, 1], s=size, c=list(colors[valid]), edgecolors="white", linewidths=0.4)
    ax.scatter(uv[hole, 0], uv[hole, 1], s=size * 1.5, c=list(colors[hole]), marker="x")


def draw_skeleton_3d(ax, pose: np.ndarray) -> np.ndarray:
    """A Human3.6M-17 pose in camera axes (x right, y down, z forward) on 3D axes, with z as depth
    and -y as up; returns the drawn points (17 x 3, plot axes) for setting equal limits."""
    for (a, b), color in zip(H36M_SKELETON, H36M_LIMB_COLORS):
        ax.plot(pose[[a, b], 0], pose[[a, b], 2], -pose[[a, b], 1], color=color, linewidth=1.6)
    return np.stack([pose[:, 0], pose[:, 2], -pose[:, 1]], axis=1)
