"""KeypointStage: COCO-17 keypoints with TTA for every box of the batch, the crops of all frames
in shared model calls. Drops the color images afterwards (no later stage needs them)."""

from __future__ import annotations

import numpy as np

from orpose.configs.schema import CONFIG_DIR
from orpose.stages._batching import release_freed_heap, with_oom_backoff
from orpose.stages.context import StageContext
from orpose.stages.rows import Timer, num_rows, objects, rows_ok
from orpose.teachers.keypoints import TopDownKeypoints
from orpose.teachers.mm import pick_device
from orpose.teachers.weights import checkpoint_path

__all__ = ["KeypointStage"]


class KeypointStage:
    """keypoints (P, 17, 3) x, y, confidence and spread (P, 17) px across the TTA views (columns: `stages.graph`)."""

    def __init__(self, *, model: TopDownKeypoints):
        self.model = model

    @classmethod
    def from_config(cls, context: StageContext) -> "KeypointStage":
        context.set_torch_threads()
        config = context.config
        return cls(
            model=TopDownKeypoints(
                config.keypoints,
                checkpoint_path(context.weights_dir, config.keypoints.checkpoint),
                pick_device(config.device),
                CONFIG_DIR,
                precision=config.precision,
                channels_last=config.channels_last,
            )
        )

    def _keypoints(self, items: list) -> list:
        people = self.model([image for image, _ in items], [boxes for _, boxes in items])
        return [(p.keypoints, p.spread) for p in people]

    def __call__(self, batch: dict) -> dict:
        with Timer("keypoints") as timer:
            rows = num_rows(batch)
            keypoints = [np.zeros((0, 17, 3), np.float32)] * rows
            spread = [np.zeros((0, 17), np.float32)] * rows
            ok = rows_ok(batch)
            results = with_oom_backoff(
                self._keypoints, [(batch["color"][i], batch["boxes"][i]) for i in ok], "keypoints"
            )
            for i, (k, s) in zip(ok, results):
                keypoints[i], spread[i] = k, s
            batch = {key: value for key, value in batch.items() if key != "color"}
            batch.update(keypoints=objects(keypoints), spread=objects(spread))
            release_freed_heap()
        return timer.stamp(batch)
