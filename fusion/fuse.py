"""One instant's views fused: association (`fusion.association`), then triangulation (`fusion.triangulation`) of
each group of persons seen by two or more views.

The world of the cameras is the caller's: with `world_to_camera` the inverse of each camera's pose in the room
(`camera_to_room` in calibration.json) the points come back in room coordinates (mm); `stages.fuse` writes them
as the shard's `pose3d_room*` fields.

Not for: which frames form an instant (`fusion.instants`) or where this runs (`stages.fuse`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from orpose.fusion.association import associate
from orpose.fusion.triangulation import Triangulation, ViewCamera, triangulate

__all__ = ["FusionSettings", "FusedGroup", "fuse_instant"]


@dataclass(frozen=True)
class FusionSettings:
    max_disagreement_px: float = 25.0  # association: two views' persons agree within this (`associate`)
    outlier_px: float = 20.0  # triangulation: a view this far from a joint's point is an outlier
    min_views: int = 2  # views a joint needs for a point
    hard_min_views: int = 2  # a joint is hard with this many views
    hard_max_error_px: float = 5.0  # and a mean reprojection error at most this


@dataclass
class FusedGroup:
    members: list[tuple[int, int]]  # (view, person) pairs, one person per view, two or more
    triangulation: Triangulation  # points in the world frame of the cameras

    def hard(self, settings: FusionSettings) -> np.ndarray:
        """(17,) the joints with hard_min_views views and a reprojection error within hard_max_error_px."""
        with np.errstate(invalid="ignore"):
            return (self.triangulation.views >= max(settings.hard_min_views, settings.min_views)) & (
                self.triangulation.error_px <= settings.hard_max_error_px
            )


def fuse_instant(
    keypoints: Sequence[np.ndarray], cameras: Sequence[ViewCamera], settings: FusionSettings = FusionSettings()
) -> list[FusedGroup]:
    """The persons seen by two or more views of one instant (keypoints[v]: view v's soft 2D keypoints, (P_v, 17,
    3)), each group triangulated; in `associate`'s order. Persons no other view agrees with are in no group."""
    if len(keypoints) < 2:
        return []
    fused = []
    for group in associate(keypoints, cameras, settings.max_disagreement_px):
        if len(group) < 2:
            continue
        uv = np.full((len(keypoints), 17, 2), np.nan)
        confidence = np.zeros((len(keypoints), 17))
        for v, p in group:
            uv[v], confidence[v] = keypoints[v][p, :, :2], keypoints[v][p, :, 2]
        triangulation = triangulate(
            uv, confidence, cameras, outlier_px=settings.outlier_px, min_views=settings.min_views
        )
        fused.append(FusedGroup(list(group), triangulation))
    return fused
