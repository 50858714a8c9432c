"""Pure camera maths: projection, back-projection, rigid transforms. Millimetres and pixels.

Pixel convention (OpenCV): the centre of pixel (row v, column u) has coordinates (u, v). So a
3D point X projects to u = fx * X/Z + cx, and `round(u)` is the column of the pixel it lands in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # frames.calibration builds on these functions; only the type flows back
    from orpose.frames.calibration import Intrinsics

__all__ = ["project", "backproject", "apply_rigid", "invert_rigid", "look_at", "box_iou"]


def project(points: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """(..., 3) camera-frame points in mm -> (..., 2) pixel coordinates.

    Applies the OpenCV distortion model when the intrinsics carry coefficients.
    Points at or behind the camera (Z <= 0) give NaN.
    """
    points = np.asarray(points, dtype=np.float64)
    z = points[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(z > 0, points[..., 0] / z, np.nan)
        y = np.where(z > 0, points[..., 1] / z, np.nan)
    if intr.distortion and any(intr.distortion):
        k = list(intr.distortion) + [0.0] * (5 - len(intr.distortion))
        k1, k2, p1, p2, k3 = k[:5]
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
        x, y = (
            x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
            y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y,
        )
    return np.stack([intr.fx * x + intr.cx, intr.fy * y + intr.cy], axis=-1)


def backproject(uv: np.ndarray, depth_mm: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """Pixel coordinates (..., 2) and depth Z in mm (...) -> (..., 3) camera-frame points.

    Ignores distortion: callers with distorted images undistort the pixels first.
    """
    uv = np.asarray(uv, dtype=np.float64)
    z = np.asarray(depth_mm, dtype=np.float64)
    x = (uv[..., 0] - intr.cx) / intr.fx * z
    y = (uv[..., 1] - intr.cy) / intr.fy * z
    return np.stack([x, y, z], axis=-1)


def apply_rigid(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 rigid transform to (..., 3) points."""
    points = np.asarray(points, dtype=np.float64)
    return points @ transform[:3, :3].T + transform[:3, 3]


def invert_rigid(transform: np.ndarray) -> np.ndarray:
    """Exact inverse of a rigid transform (R^T, -R^T t), without a general matrix inverse."""
    rotation = transform[:3, :3]
    inverse = np.eye(4)
    inverse[:3, :3] = rotation.T
    inverse[:3, 3] = -rotation.T @ transform[:3, 3]
    return inverse


def look_at(eye: np.ndarray, target: np.ndarray, world_up: np.ndarray = (0.0, 0.0, 1.0)) -> np.ndarray:
    """World-to-camera transform of a camera at `eye` looking at `target` (OpenCV axes:
    x right, y down, z forward)."""
    eye = np.asarray(eye, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, world_up)
    if np.linalg.norm(right) < 1e-9:
        raise ValueError("look_at: viewing direction is parallel to the up vector")
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])  # rows: camera axes in world coordinates
    world_to_camera = np.eye(4)
    world_to_camera[:3, :3] = rotation
    world_to_camera[:3, 3] = -rotation @ eye
    return world_to_camera


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of xyxy boxes."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=-1)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=-1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
