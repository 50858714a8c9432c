"""LiftStage: the hard set of every person, and its soft and hard 3D poses, one lifter call each.

The hard set is decided here, once (`stages.label_sets.hard_keypoints`), and travels as the
columns hard_mask and hard_valid: the lifter's hard input and the shard's hard fields are the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from orpose.stages._batching import release_freed_heap
from orpose.stages.base import Stage
from orpose.stages.context import StageContext
from orpose.stages.label_sets import hard_keypoints
from orpose.stages.rows import objects

if TYPE_CHECKING:
    from orpose.teachers.lifter import Lifter

__all__ = ["LiftStage"]


class LiftStage(Stage):
    """hard_mask (P, 17), hard_valid (P,), pose_soft (P, 17, 3) lifted from every keypoint and
    pose_hard (P, 17, 3) lifted from the hard keypoints."""

    name, kind = "lift", "model"
    reads = ("keypoints", "boxes")
    writes = ("hard_mask", "hard_valid", "pose_soft", "pose_hard")

    def __init__(self, *, lifter: Lifter, keypoint_score: float, min_keypoints: int):
        self.lifter = lifter
        self.keypoint_score, self.min_keypoints = keypoint_score, min_keypoints

    @classmethod
    def from_config(cls, context: StageContext) -> "LiftStage":
        from orpose.configs.schema import CONFIG_DIR
        from orpose.teachers.lifter import Lifter
        from orpose.teachers.mm import pick_device
        from orpose.teachers.weights import checkpoint_path

        context.set_torch_threads()
        config = context.config
        lifter = Lifter(
            config.lifter,
            checkpoint_path(context.weights_dir, config.lifter.checkpoint),
            pick_device(config.device),
            CONFIG_DIR,
            precision=config.precision,
        )
        return cls(
            lifter=lifter,
            keypoint_score=config.thresholds.keypoint_score,
            min_keypoints=config.thresholds.min_keypoints,
        )

    def _lift(self, items: list) -> list:
        counts = [len(k) for k, _, _ in items]
        if sum(counts) == 0:
            empty = np.zeros((0, 17, 3), np.float32)
            return [(empty, empty)] * len(items)
        keypoints = np.concatenate([k for k, _, _ in items])
        boxes = np.concatenate([b for _, b, _ in items])
        hard_mask = np.concatenate([m for _, _, m in items])
        soft = self.lifter(keypoints, boxes)
        hard = self.lifter(keypoints, boxes, hard_mask)
        splits = np.cumsum(counts)[:-1]
        return list(zip(np.split(soft, splits), np.split(hard, splits)))

    def __call__(self, batch: dict) -> dict:
        with self.timer() as timer:
            keypoints = [np.asarray(k, np.float32).reshape(-1, 17, 3) for k in batch["keypoints"]]
            hard = [hard_keypoints(k, self.keypoint_score, self.min_keypoints) for k in keypoints]
            items = [
                (k, np.asarray(b).reshape(-1, 4), mask) for k, b, (mask, _) in zip(keypoints, batch["boxes"], hard)
            ]
            results = self.within_memory(self._lift, items)
            batch = dict(
                batch,
                hard_mask=objects([m for m, _ in hard]),
                hard_valid=objects([v for _, v in hard]),
                pose_soft=objects([s for s, _ in results]),
                pose_hard=objects([h for _, h in results]),
            )
            release_freed_heap()
        return timer.stamp(batch)
