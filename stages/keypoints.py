"""KeypointStage: COCO-17 keypoints with TTA for every box of the batch, the crops of all frames
in shared model calls. Drops the color images afterwards (no later stage needs them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from configs.schema import CONFIG_DIR, TeacherConfig
from stages._batching import Timer, objects, release_freed_heap, rows_ok, with_oom_backoff
from teachers.keypoints import TopDownKeypoints
from teachers.mm import pick_device
from teachers.weights import checkpoint_path

__all__ = ["KeypointStage"]


class KeypointStage:
    """Reads: color, boxes, error_reason. Writes: keypoints (P, 17, 3), spread (P, 17),
    seconds_keypoints. Removes: color."""

    reads = ("color", "boxes", "error_reason")
    writes = ("keypoints", "spread", "seconds_keypoints")

    def __init__(self, config: TeacherConfig, weights_dir: str | Path):
        torch.set_num_threads(config.run.torch_threads)
        self.model = TopDownKeypoints(config.keypoints, checkpoint_path(weights_dir, config.keypoints.checkpoint),
                                      pick_device(config.device), CONFIG_DIR, precision=config.precision,
                                      channels_last=config.channels_last)

    def _keypoints(self, items: list) -> list:
        people = self.model([image for image, _ in items], [boxes for _, boxes in items])
        return [(p.keypoints, p.spread) for p in people]

    def __call__(self, batch: dict) -> dict:
        with Timer("keypoints") as timer:
            rows = len(batch["frame_id"])
            keypoints = [np.zeros((0, 17, 3), np.float32)] * rows
            spread = [np.zeros((0, 17), np.float32)] * rows
            ok = rows_ok(batch)
            results = with_oom_backoff(self._keypoints, [(batch["color"][i], batch["boxes"][i]) for i in ok], "keypoints")
            for i, (k, s) in zip(ok, results):
                keypoints[i], spread[i] = k, s
            batch = {key: value for key, value in batch.items() if key != "color"}
            batch.update(keypoints=objects(keypoints), spread=objects(spread))
            release_freed_heap()
        return timer.stamp(batch)
