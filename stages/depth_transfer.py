"""Color-to-depth pseudo ground truth and camera-frame 3D, as pure functions.

Moving a color keypoint onto the depth frame:
- registered rigs: the same pixel grid, scaled when the depth image has another size;
- calibrated rigs: every valid depth pixel is back-projected, moved into the color camera and
  projected; a z-buffer keeps, per color pixel, the depth point nearest the camera. The
  keypoint's depth-frame position is then exact for a locally fronto-parallel surface.
In both, a keypoint takes the reading at its own pixel, or else, in a hole, the nearest foreground
reading within `radius_px` (holes sit on depth edges; readings more than 250 mm behind the
nearest one are the background): that is the surface point both cameras see.
Flags per keypoint: 0 valid, 1 in a depth hole (no reading within the radius), 2 outside the depth
camera's view, 3 the frame has no depth.

Camera-frame 3D (beyond the papers): the lifter gives a root-relative pose; the depth at the
torso keypoints (shoulders, hips) gives its distance. The surface the camera sees lies in front of
a joint by the body's half-thickness there (`joints.SURFACE_OFFSET_MM`), so each torso joint
votes for the pelvis depth: surface z + offset - the joint's relative z. The median of the votes
anchors the pose (robust to a hole or a wrong reading). Each keypoint's depth consistency compares
the measured surface (+ offset) with the anchored joint: exp(-d^2 / (2 * 100 mm^2)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from orpose.frames.calibration import CameraCalibration
from orpose.frames.geometry import apply_rigid, backproject, invert_rigid, project
from orpose.label_store.schema import DEPTH_HOLE, DEPTH_NONE, DEPTH_OUTSIDE, DEPTH_VALID

__all__ = [
    "DepthLabels",
    "depth_points_in_color_frame",
    "transfer_keypoints",
    "anchor_poses",
    "COCO_TO_H36M_JOINT",
    "CONSISTENCY_SIGMA_MM",
]

CONSISTENCY_SIGMA_MM = 100.0
FOREGROUND_GAP_MM = 250.0  # readings farther than this behind the nearest one are background
# The H36M joint that stands for each COCO joint in a lifted pose (eyes and ears: the head).
COCO_TO_H36M_JOINT = np.array([9, 10, 10, 10, 10, 11, 14, 12, 15, 13, 16, 4, 1, 5, 2, 6, 3])
_TORSO = (5, 6, 11, 12)  # COCO shoulders and hips


@dataclass
class DepthLabels:
    uv: np.ndarray  # (N, 2) keypoints on the depth image, pixel-index coordinates
    flag: np.ndarray  # (N,) int8, DEPTH_*
    surface: np.ndarray  # (N, 3) the surface point seen at the keypoint, color-camera mm (NaN if none)


def _pick_reading(index_map: np.ndarray, uv: np.ndarray, radius: float, entry_depth: np.ndarray) -> np.ndarray:
    """For each point, the entry of `index_map` (>= 0 = a reading) at its own pixel, or else the
    nearest entry within `radius` pixels among the foreground readings there (those within
    FOREGROUND_GAP_MM of the nearest-to-camera one); -1 if none. Holes sit on depth edges, where
    the nearest pixel is as likely the background a metre behind as the person in front."""
    h, w = index_map.shape
    r = int(np.ceil(radius))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    disc = dx * dx + dy * dy <= radius * radius
    dx, dy = dx[disc], dy[disc]
    found = np.full(len(uv), -1, dtype=np.int64)
    for k, (u, v) in enumerate(uv):
        if not np.isfinite(u) or not np.isfinite(v):
            continue
        cu, cv = int(round(u)), int(round(v))
        if 0 <= cu < w and 0 <= cv < h and index_map[cv, cu] >= 0:
            found[k] = index_map[cv, cu]
            continue
        x, y = cu + dx, cv + dy
        inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
        entries, ring = index_map[y[inside], x[inside]], (dx * dx + dy * dy)[inside]
        entries, ring = entries[entries >= 0], ring[entries >= 0]
        if len(entries):
            depth = entry_depth[entries]
            foreground = depth <= depth.min() + FOREGROUND_GAP_MM
            best = np.lexsort((depth[foreground], ring[foreground]))[0]  # nearest pixel, then nearest depth
            found[k] = entries[foreground][best]
    return found


def depth_points_in_color_frame(depth_mm: np.ndarray, calibration: CameraCalibration, stride: int = 1) -> np.ndarray:
    """Every valid depth reading (every `stride`-th row and column) as a point in the color camera
    frame, mm (N x 3, row-major order of the depth pixels). Registered depth: the reading's ray is
    the color camera's ray through the scaled pixel; a calibrated rig: the depth camera's own ray,
    moved by depth_to_color."""
    rows, cols = np.mgrid[0 : depth_mm.shape[0] : stride, 0 : depth_mm.shape[1] : stride]
    valid = depth_mm[rows, cols] > 0
    ys, xs = rows[valid], cols[valid]
    z = depth_mm[ys, xs]
    if calibration.registered:
        scale = calibration.depth_grid.width / calibration.color.width
        uv = np.stack([(xs + 0.5) / scale - 0.5, (ys + 0.5) / scale - 0.5], axis=1)
        return backproject(uv, z, calibration.color)
    points_depth = backproject(np.stack([xs, ys], axis=1).astype(np.float64), z, calibration.depth_grid)
    return apply_rigid(calibration.depth_to_color, points_depth)


def transfer_keypoints(
    uv_color: np.ndarray, depth_mm: np.ndarray | None, calibration: CameraCalibration, radius_px: float = 3.0
) -> DepthLabels:
    """Color keypoints (N, 2) -> their place on the depth image and the surface point seen there."""
    uv_color = np.asarray(uv_color, dtype=np.float64).reshape(-1, 2)
    n = len(uv_color)
    if depth_mm is None or not calibration.has_depth:
        return DepthLabels(np.full((n, 2), np.nan), np.full(n, DEPTH_NONE, np.int8), np.full((n, 3), np.nan))
    grid = calibration.depth_grid
    h, w = depth_mm.shape
    valid = depth_mm > 0
    flag = np.full(n, DEPTH_VALID, np.int8)
    surface = np.full((n, 3), np.nan)

    if calibration.registered:
        scale = grid.width / calibration.color.width
        uv_depth = (uv_color + 0.5) * scale - 0.5
        inside = (
            (uv_depth[:, 0] > -0.5) & (uv_depth[:, 0] < w - 0.5) & (uv_depth[:, 1] > -0.5) & (uv_depth[:, 1] < h - 0.5)
        )
        index_map = np.where(valid, np.arange(h * w).reshape(h, w), -1)
        found = _pick_reading(index_map, uv_depth, radius_px * scale, depth_mm.ravel())
        for k in range(n):
            if not inside[k]:
                flag[k] = DEPTH_OUTSIDE
            elif found[k] < 0:
                flag[k] = DEPTH_HOLE
            else:
                y, x = divmod(int(found[k]), w)
                # Registered: the depth pixel's ray is the color camera's ray through the scaled pixel.
                surface[k] = backproject(
                    np.array([(x + 0.5) / scale - 0.5, (y + 0.5) / scale - 0.5]), depth_mm[y, x], calibration.color
                )
        return DepthLabels(uv_depth, flag, surface)

    # Calibrated rig: depth pixels -> color camera, with a z-buffer on the color grid.
    color = calibration.color
    points_color = depth_points_in_color_frame(depth_mm, calibration)
    uv = project(points_color, color)
    cu, cv = np.round(uv[:, 0]).astype(np.int64), np.round(uv[:, 1]).astype(np.int64)
    on_grid = (cu >= 0) & (cu < color.width) & (cv >= 0) & (cv < color.height) & (points_color[:, 2] > 0)
    order = np.flatnonzero(on_grid)
    order = order[np.lexsort((points_color[order, 2], cv[order] * color.width + cu[order]))]
    flat = cv[order] * color.width + cu[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = flat[1:] != flat[:-1]  # the nearest depth point per color pixel
    index_map = np.full(color.height * color.width, -1, dtype=np.int64)
    index_map[flat[first]] = order[first]
    index_map = index_map.reshape(color.height, color.width)

    found = _pick_reading(index_map, uv_color, radius_px, points_color[:, 2])
    color_to_depth = invert_rigid(calibration.depth_to_color)
    typical_z = float(np.median(points_color[:, 2])) if len(points_color) else 1000.0
    uv_depth = np.full((n, 2), np.nan)
    for k in range(n):
        if found[k] >= 0:
            z = points_color[found[k], 2]
            surface[k] = backproject(uv_color[k], z, color)  # the keypoint's own ray, at the surface's depth
            uv_depth[k] = project(apply_rigid(color_to_depth, surface[k]), grid)
        else:
            guess = project(apply_rigid(color_to_depth, backproject(uv_color[k], typical_z, color)), grid)
            uv_depth[k] = guess
            seen = np.all(np.isfinite(guess)) and -0.5 < guess[0] < w - 0.5 and -0.5 < guess[1] < h - 0.5
            flag[k] = DEPTH_HOLE if seen else DEPTH_OUTSIDE
    return DepthLabels(uv_depth, flag, surface)


def anchor_poses(
    pose_rel: np.ndarray,
    keypoints: np.ndarray,
    surface: np.ndarray,
    flag: np.ndarray,
    calibration: CameraCalibration,
    surface_offset_mm: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Root-relative H36M poses (P, 17, 3) + COCO keypoints (P, 17, 3) + their depth labels
    (surface (P, 17, 3), flag (P, 17)) -> camera-frame poses (P, 17, 3) in the color camera's
    coordinates (NaN where no torso joint has depth) and per-COCO-keypoint depth consistency
    (P, 17) in [0, 1] (NaN where the keypoint has no depth)."""
    pose_rel = np.asarray(pose_rel, dtype=np.float64).reshape(-1, 17, 3)
    people = len(pose_rel)
    camera = np.full((people, 17, 3), np.nan)
    consistency = np.full((people, 17), np.nan)
    intr = calibration.color
    for p in range(people):
        votes = [
            surface[p, j, 2] + surface_offset_mm[j] - pose_rel[p, COCO_TO_H36M_JOINT[j], 2]
            for j in _TORSO
            if flag[p, j] == DEPTH_VALID
        ]
        if not votes:
            continue
        root_z = float(np.median(votes))
        pelvis_uv = (keypoints[p, 11, :2] + keypoints[p, 12, :2]) / 2
        root = backproject(pelvis_uv, root_z, intr)
        camera[p] = root + pose_rel[p]
        for j in range(17):
            if flag[p, j] == DEPTH_VALID:
                d = surface[p, j, 2] + surface_offset_mm[j] - camera[p, COCO_TO_H36M_JOINT[j], 2]
                consistency[p, j] = np.exp(-0.5 * (d / CONSISTENCY_SIGMA_MM) ** 2)
    return camera, consistency
