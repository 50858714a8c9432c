"""FuseStage: multi-view fusion of each instant of a shard into the `pose3d_room*` label set (a shard stage).

It runs in the driver on one whole shard's rows, just before the commit (`pipeline.commit.ShardCommitter`): the
plan keeps an instant's frames in one shard (`label_store.plan`, instant-ordered when `fusion.enabled`), so every
view of an instant is there, whichever executor labelled them. For each instant, the labelled frames' persons are
associated across views and triangulated (`fusion.fuse.fuse_instant`) with each camera's pose in the room
(`camera_to_room` in calibration.json), and every member of a group gets the group's 3D: in the room and in its own
camera's frame, with the views and reprojection error of each joint and the hard set. A rejected frame takes no
part (the instant's other views still fuse); a person no other view agrees with keeps the schema's fill values.
An instant whose fusion raises keeps the fill values too, and the error is logged naming its frames: the frames'
own labels are never lost to it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Mapping

import numpy as np

from orpose.configs.schema import FusionSpec
from orpose.frames.calibration import CameraCalibration, camera_poses
from orpose.frames.geometry import apply_rigid, invert_rigid
from orpose.fusion.fuse import fuse_instant
from orpose.fusion.triangulation import ViewCamera
from orpose.label_store.schema import FUSION_PERSON_FIELDS, STATUS_LABELLED, filled
from orpose.stages.base import Stage
from orpose.stages.context import StageContext

__all__ = ["FuseStage"]

log = logging.getLogger(__name__)


class FuseStage(Stage):
    """One shard's rows in (frame_id, record: in plan order), the same rows out with the records'
    FUSION_PERSON_FIELDS written."""

    name, kind = "fuse", "shard"
    reads = ("frame_id", "record")
    writes = ("record",)

    def __init__(self, *, cameras: Mapping[str, ViewCamera], settings: FusionSpec):
        self.cameras = dict(cameras)
        self.settings = settings

    @classmethod
    def from_config(cls, context: StageContext) -> "FuseStage":
        return cls(cameras=view_cameras(context.calibrations), settings=context.config.fusion)

    def __call__(self, batch: dict) -> dict:
        with self.timer() as timer:
            instants = defaultdict(list)
            for record in batch["record"]:
                _unfused(record)
                if record.frame["status"] == STATUS_LABELLED and int(record.frame.get("instant", -1)) >= 0:
                    instants[int(record.frame["instant"])].append(record)
            for records in instants.values():
                try:
                    self.fuse(records)
                except Exception as error:  # noqa: BLE001 - one instant's bug must not cost the shard its labels
                    frames = ", ".join(r.frame["frame_id"] for r in records)
                    log.warning("fuse: instant of frames %s left unfused (%s: %s)", frames, type(error).__name__, error)
                    for record in records:
                        _unfused(record)
        return timer.stamp(batch)

    def fuse(self, records: list) -> None:
        """One instant's labelled frames (one per camera): their persons fused in place."""
        views = [r for r in records if r.num_persons]
        if len(views) < 2:
            return
        cameras = [self.cameras[r.frame["camera_id"]] for r in views]
        keypoints = [np.asarray(r.persons["keypoints_2d"], np.float64) for r in views]
        for number, group in enumerate(fuse_instant(keypoints, cameras, self.settings)):
            points = group.triangulation.points
            hard = group.hard(self.settings)
            for v, p in group.members:
                persons = views[v].persons
                persons["pose3d_room"][p] = points
                persons["pose3d_room_camera"][p] = apply_rigid(cameras[v].world_to_camera, points)
                persons["pose3d_room_views"][p] = group.triangulation.views
                persons["pose3d_room_error_px"][p] = group.triangulation.error_px
                persons["pose3d_room_hard"][p] = hard
                persons["fusion_group"][p] = number


def _unfused(record) -> None:
    """The record's persons with the multi-view fields' fill values (no group, no point)."""
    if record.num_persons:
        for f in FUSION_PERSON_FIELDS:
            record.persons[f.name] = filled(f, record.num_persons)


def view_cameras(calibrations: Mapping[str, CameraCalibration], source: str = "the source's calibration") -> dict:
    """Each camera as a ViewCamera whose world is the room. Raises CalibrationError naming the first camera
    without a pose (`camera_to_room`): fusion needs every camera's."""
    return {
        camera_id: ViewCamera(calibrations[camera_id].color, invert_rigid(pose))
        for camera_id, pose in camera_poses(calibrations, source).items()
    }
