"""DetectStage: person boxes, scores and masks (RLE) for the batch's frames, one model call per
`views_per_forward` TTA views. Holds the detector for the stage's life."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from orpose.stages._batching import release_freed_heap
from orpose.stages.base import Stage
from orpose.stages.context import StageContext
from orpose.stages.records import encode_masks
from orpose.stages.rows import REJECT_REASON, num_rows, objects, rows_ok

if TYPE_CHECKING:
    from orpose.teachers.detector import PersonDetector

__all__ = ["DetectStage"]


class DetectStage(Stage):
    """boxes (P, 4) xyxy, scores (P,), mask_rle (P COCO RLE strings) per frame."""

    name, kind = "detect", "model"
    reads = ("color", REJECT_REASON)
    writes = ("boxes", "scores", "mask_rle")

    def __init__(self, *, detector: PersonDetector):
        self.detector = detector

    @classmethod
    def from_config(cls, context: StageContext) -> "DetectStage":
        from orpose.configs.schema import CONFIG_DIR
        from orpose.teachers.detector import PersonDetector
        from orpose.teachers.mm import pick_device
        from orpose.teachers.weights import checkpoint_path

        context.set_torch_threads()
        config = context.config
        return cls(
            detector=PersonDetector(
                config.detector,
                checkpoint_path(context.weights_dir, config.detector.checkpoint),
                pick_device(config.device),
                config.thresholds.box_score,
                CONFIG_DIR,
                precision=config.precision,
                channels_last=config.channels_last,
                compile=config.compile,
            )
        )

    def _detect(self, images: list) -> list:
        return [(d.boxes, d.scores, encode_masks(d.masks)) for d in self.detector(images)]

    def __call__(self, batch: dict) -> dict:
        with self.timer() as timer:
            rows = num_rows(batch)
            boxes, scores, masks = [np.zeros((0, 4), np.float32)] * rows, [np.zeros(0, np.float32)] * rows, [[]] * rows
            ok = rows_ok(batch)
            results = self.within_memory(self._detect, [batch["color"][i] for i in ok])
            for i, (b, s, m) in zip(ok, results):
                boxes[i], scores[i], masks[i] = b, s, m
            batch = dict(batch, boxes=objects(boxes), scores=objects(scores), mask_rle=objects(masks))
            release_freed_heap()
        return timer.stamp(batch)
