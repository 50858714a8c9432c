"""LiftStage: soft and hard 3D poses for every person of the batch, in one lifter call each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from configs.schema import CONFIG_DIR, TeacherConfig
from stages._batching import Timer, objects, release_freed_heap, with_oom_backoff
from teachers.lifter import Lifter
from teachers.mm import pick_device
from teachers.weights import checkpoint_path

__all__ = ["LiftStage"]


class LiftStage:
    """Reads: keypoints, boxes. Writes: pose_soft (P, 17, 3) lifted from all keypoints,
    pose_hard (P, 17, 3) lifted from the keypoints above the hard threshold, seconds_lift."""

    reads = ("keypoints", "boxes")
    writes = ("pose_soft", "pose_hard", "seconds_lift")

    def __init__(self, config: TeacherConfig, weights_dir: str | Path):
        torch.set_num_threads(config.run.torch_threads)
        self.keypoint_score = config.thresholds.keypoint_score
        self.lifter = Lifter(config.lifter, checkpoint_path(weights_dir, config.lifter.checkpoint),
                             pick_device(config.device), CONFIG_DIR, precision=config.precision)

    def _lift(self, items: list) -> list:
        counts = [len(k) for k, _ in items]
        if sum(counts) == 0:
            empty = np.zeros((0, 17, 3), np.float32)
            return [(empty, empty)] * len(items)
        keypoints = np.concatenate([k for k, _ in items])
        boxes = np.concatenate([b for _, b in items])
        soft = self.lifter(keypoints, boxes)
        hard = self.lifter(keypoints, boxes, keypoints[..., 2] > self.keypoint_score)
        splits = np.cumsum(counts)[:-1]
        return list(zip(np.split(soft, splits), np.split(hard, splits)))

    def __call__(self, batch: dict) -> dict:
        with Timer("lift") as timer:
            items = [(np.asarray(k).reshape(-1, 17, 3), np.asarray(b).reshape(-1, 4))
                     for k, b in zip(batch["keypoints"], batch["boxes"])]
            results = with_oom_backoff(self._lift, items, "lift")
            batch = dict(batch, pose_soft=objects([s for s, _ in results]), pose_hard=objects([h for _, h in results]))
            release_freed_heap()
        return timer.stamp(batch)
