"""Triangulating joints seen by several calibrated cameras: confidence-weighted linear triangulation (DLT),
refined by minimising the reprojection error, with views rejected as outliers by trying every pair of views
(few cameras: every pair is cheap, so no random sampling is needed).

Conventions: a `ViewCamera` is a camera's intrinsics (pixel-index coordinates, OpenCV distortion) and its
`world_to_camera` 4x4 rigid transform (mm); 2D keypoints are (V views, J joints, 2) pixels with a confidence
(V, J) in [0, 1]: 0 means the view does not see the joint (it takes no part). Points come back in the world
frame (mm), NaN where fewer than `min_views` views support the joint. Distortion is removed from the 2D points
(OpenCV's `undistortPoints`) before the linear step; errors are measured in pixels through the full model
(`frames.geometry.project`).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Sequence

import numpy as np

from orpose.frames.calibration import Intrinsics
from orpose.frames.geometry import apply_rigid, project

__all__ = [
    "ViewCamera",
    "Triangulation",
    "normalized",
    "camera_projections",
    "triangulate_dlt",
    "refine",
    "reprojection_px",
    "triangulate",
]


@dataclass(frozen=True)
class ViewCamera:
    intrinsics: Intrinsics
    world_to_camera: np.ndarray  # 4x4 rigid, mm


@dataclass
class Triangulation:
    points: np.ndarray  # (J, 3) world mm; NaN where fewer than min_views views support the joint
    inliers: np.ndarray  # (V, J) bool: the views each joint was triangulated from
    error_px: np.ndarray  # (J,) mean reprojection error over the inlier views, pixels; NaN without a point

    @property
    def views(self) -> np.ndarray:
        """(J,) how many views support each joint."""
        return self.inliers.sum(axis=0)


def normalized(uv: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """(..., 2) pixels -> (..., 2) normalized image coordinates (x/z, y/z), distortion removed."""
    uv = np.asarray(uv, dtype=np.float64)
    if intrinsics.distortion and any(intrinsics.distortion):
        import cv2

        flat = uv.reshape(-1, 1, 2)
        finite = np.isfinite(flat).all(axis=-1).ravel()
        out = np.full(flat.shape, np.nan)
        if finite.any():
            out[finite] = cv2.undistortPoints(
                flat[finite], intrinsics.matrix(), np.asarray(intrinsics.distortion, np.float64)
            )
        return out.reshape(uv.shape)
    return np.stack([(uv[..., 0] - intrinsics.cx) / intrinsics.fx, (uv[..., 1] - intrinsics.cy) / intrinsics.fy], -1)


def camera_projections(cameras: Sequence[ViewCamera]) -> np.ndarray:
    """(V, 3, 4) [R | t] of each camera (normalized coordinates)."""
    return np.stack([np.asarray(c.world_to_camera, np.float64)[:3] for c in cameras])


def triangulate_dlt(xn: np.ndarray, weights: np.ndarray, projections: np.ndarray, min_views: int = 2) -> np.ndarray:
    """Weighted linear triangulation. xn (V, J, 2) normalized coordinates, weights (V, J) (0: not seen),
    projections (V, 3, 4) -> (J, 3); NaN where fewer than `min_views` views have weight > 0."""
    xn, weights = np.asarray(xn, np.float64), np.asarray(weights, np.float64)
    seen = (weights > 0) & np.isfinite(xn).all(axis=-1)
    w = np.where(seen, weights, 0.0)
    x = np.where(seen[..., None], xn, 0.0)
    # two rows a view: w (x P3 - P1), w (y P3 - P2), for every joint at once: (J, 2V, 4)
    rows_x = w[..., None] * (x[..., 0:1] * projections[:, None, 2] - projections[:, None, 0])
    rows_y = w[..., None] * (x[..., 1:2] * projections[:, None, 2] - projections[:, None, 1])
    system = np.concatenate([rows_x, rows_y], axis=0).transpose(1, 0, 2)
    _, _, vt = np.linalg.svd(system)
    homogeneous = vt[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        points = homogeneous[:, :3] / homogeneous[:, 3:4]
    points[seen.sum(axis=0) < min_views] = np.nan
    return points


def refine(
    points: np.ndarray, xn: np.ndarray, weights: np.ndarray, cameras: Sequence[ViewCamera], iterations: int = 10
) -> np.ndarray:
    """Gauss-Newton on the weighted reprojection error (in pixels through each camera's focal length, normalized
    coordinates), every joint at once; a step that does not lower a joint's error is not taken."""
    projections = camera_projections(cameras)
    focal = np.array([[c.intrinsics.fx, c.intrinsics.fy] for c in cameras])  # (V, 2)
    seen = (np.asarray(weights) > 0) & np.isfinite(xn).all(axis=-1)
    w = np.where(seen, weights, 0.0)[..., None] * focal[:, None, :]  # (V, J, 2) residual scale
    target = np.where(seen[..., None], xn, 0.0)
    points = np.array(points, dtype=np.float64)
    live = np.isfinite(points).all(axis=1)

    def residuals(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = np.einsum("vab,jb->vja", projections[:, :, :3], p) + projections[:, None, :, 3]
        with np.errstate(divide="ignore", invalid="ignore"):
            projected = y[..., :2] / y[..., 2:3]
        r = np.where(seen[..., None], w * (projected - target), 0.0)
        return r, y

    for _ in range(iterations):
        r, y = residuals(np.where(live[:, None], points, 0.0))
        z = y[..., 2]
        # d(projected)/dY (V, J, 2, 3), then d/dX through R: (V, J, 2, 3)
        d = np.zeros((*z.shape, 2, 3))
        with np.errstate(divide="ignore", invalid="ignore"):
            d[..., 0, 0] = 1 / z
            d[..., 1, 1] = 1 / z
            d[..., 0, 2] = -y[..., 0] / z**2
            d[..., 1, 2] = -y[..., 1] / z**2
        jacobian = np.einsum("vjab,vbc->vjac", d, projections[:, :, :3]) * w[..., None]
        jacobian = np.where(seen[..., None, None], jacobian, 0.0)
        jt_j = np.einsum("vjab,vjac->jbc", jacobian, jacobian) + 1e-9 * np.eye(3)
        jt_r = np.einsum("vjab,vja->jb", jacobian, r)
        with np.errstate(invalid="ignore"):
            step = np.linalg.solve(jt_j, -jt_r[..., None])[..., 0]
        candidate = points + np.where(np.isfinite(step), step, 0.0)
        before = (r**2).sum(axis=(0, 2))
        after = (residuals(np.where(live[:, None], candidate, 0.0))[0] ** 2).sum(axis=(0, 2))
        better = live & (after < before)
        points[better] = candidate[better]
    return points


def reprojection_px(points: np.ndarray, uv: np.ndarray, cameras: Sequence[ViewCamera]) -> np.ndarray:
    """(V, J) pixel distance of each world point's projection to each view's 2D point (NaN where either is
    missing or the point is behind the camera)."""
    out = []
    for camera, observed in zip(cameras, uv):
        projected = project(apply_rigid(camera.world_to_camera, points), camera.intrinsics)
        out.append(np.linalg.norm(projected - observed, axis=-1))
    return np.array(out)


def triangulate(
    uv: np.ndarray,
    confidence: np.ndarray,
    cameras: Sequence[ViewCamera],
    outlier_px: float = 20.0,
    min_views: int = 2,
    min_confidence: float = 0.0,
) -> Triangulation:
    """Every joint from the views that agree on it. For each joint, every pair of views that see it (confidence
    above `min_confidence`) gives a hypothesis; the one whose point reprojects within `outlier_px` in the most
    views (then the lowest error) wins, and the joint is triangulated again from those views (weighted by
    confidence) and refined. With two views there is nothing to outvote: both are kept when they agree within
    `outlier_px`, else the joint has no point."""
    uv, confidence = np.asarray(uv, np.float64), np.asarray(confidence, np.float64)
    views, joints = confidence.shape
    xn = np.stack([normalized(uv[v], cameras[v].intrinsics) for v in range(views)])
    seen = (confidence > min_confidence) & np.isfinite(uv).all(axis=-1)
    projections = camera_projections(cameras)
    best_inliers = np.zeros((views, joints), bool)
    best_key = np.full((joints, 2), np.inf)  # (-inlier count, summed inlier error): lower is better
    for a, b in combinations(range(views), 2):
        pair = np.zeros((views, joints))
        pair[[a, b]] = np.where(seen[[a, b]], 1.0, 0.0)
        hypothesis = triangulate_dlt(xn, pair, projections, min_views=2)
        errors = reprojection_px(hypothesis, uv, cameras)
        inliers = seen & (errors < outlier_px)
        key = np.stack([-inliers.sum(axis=0), np.where(inliers, errors, 0.0).sum(axis=0)], axis=1)
        valid = np.isfinite(hypothesis).all(axis=1) & inliers[a] & inliers[b]
        better = valid & ((key[:, 0] < best_key[:, 0]) | ((key[:, 0] == best_key[:, 0]) & (key[:, 1] < best_key[:, 1])))
        best_inliers[:, better] = inliers[:, better]
        best_key[better] = key[better]
    weights = np.where(best_inliers, confidence, 0.0)
    points = triangulate_dlt(xn, weights, projections, min_views=min_views)
    points = refine(points, xn, weights, cameras)
    errors = reprojection_px(points, uv, cameras)
    has_point = np.isfinite(points).all(axis=1)
    inliers = best_inliers & has_point[None]
    with np.errstate(invalid="ignore"):
        mean_error = np.where(has_point, np.where(inliers, errors, 0.0).sum(0) / inliers.sum(0), np.nan)
    return Triangulation(points, inliers, mean_error)
