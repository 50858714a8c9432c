"""KeypointStage: COCO-17 keypoints with TTA for every box of the batch, the crops of all frames
in shared model calls. Drops the color images afterwards (no later stage needs them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from orpose.stages._batching import release_freed_heap
from orpose.stages.base import Stage
from orpose.stages.context import StageContext
from orpose.stages.rows import REJECT_REASON, num_rows, objects, rows_ok

if TYPE_CHECKING:
    from orpose.teachers.keypoints import TopDownKeypoints

__all__ = ["KeypointStage"]


class KeypointStage(Stage):
    """keypoints (P, 17, 3) x, y, confidence and spread (P, 17) px across the TTA views; drops the image (no
    later stage reads it)."""

    name, kind = "keypoints", "model"
    reads = ("color", "boxes", REJECT_REASON)
    writes = ("keypoints", "spread")
    drops = ("color",)

    def __init__(self, *, model: TopDownKeypoints):
        self.model = model

    @classmethod
    def from_config(cls, context: StageContext) -> "KeypointStage":
        from orpose.configs.schema import CONFIG_DIR
        from orpose.teachers.keypoints import TopDownKeypoints
        from orpose.teachers.mm import pick_device
        from orpose.teachers.weights import checkpoint_path

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
                compile=config.compile,
            )
        )

    def _keypoints(self, items: list) -> list:
        people = self.model([image for image, _ in items], [boxes for _, boxes in items])
        return [(p.keypoints, p.spread) for p in people]

    def __call__(self, batch: dict) -> dict:
        with self.timer() as timer:
            rows = num_rows(batch)
            keypoints = [np.zeros((0, 17, 3), np.float32)] * rows
            spread = [np.zeros((0, 17), np.float32)] * rows
            ok = rows_ok(batch)
            results = self.within_memory(self._keypoints, [(batch["color"][i], batch["boxes"][i]) for i in ok])
            for i, (k, s) in zip(ok, results):
                keypoints[i], spread[i] = k, s
            batch = {key: value for key, value in batch.items() if key not in self.drops}
            batch.update(keypoints=objects(keypoints), spread=objects(spread))
            release_freed_heap()
        return timer.stamp(batch)
