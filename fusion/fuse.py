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

from orpose.configs.schema import FusionSpec
from orpose.fusion.association import associate
from orpose.fusion.triangulation import Triangulation, ViewCamera, triangulate

__all__ = ["FusedGroup", "fuse_instant"]


@dataclass
class FusedGroup:
    members: list[tuple[int, int]]  # (view, person) pairs, one person per view, two or more
    triangulation: Triangulation  # points in the world frame of the cameras

    def hard(self, settings: FusionSpec) -> np.ndarray:
        """(17,) the joints with hard_min_views views and a reprojection error within hard_max_error_px."""
        with np.errstate(invalid="ignore"):
            return (self.triangulation.views >= max(settings.hard_min_views, settings.min_views)) & (
                self.triangulation.error_px <= settings.hard_max_error_px
            )


def fuse_instant(
    keypoints: Sequence[np.ndarray], cameras: Sequence[ViewCamera], settings: FusionSpec | None = None
) -> list[FusedGroup]:
    """The persons seen by two or more views of one instant (keypoints[v]: view v's soft 2D keypoints, (P_v, 17,
    3)), each group triangulated with `settings` (the config's `fusion` section; its defaults when None), in
    `associate`'s order. Persons no other view agrees with are in no group."""
    settings = settings or FusionSpec()
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
