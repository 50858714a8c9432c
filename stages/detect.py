"""DetectStage: person boxes, scores and masks (RLE) for the batch's frames, one model call per
`views_per_forward` TTA views. Holds the detector for the actor's life."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from configs.schema import CONFIG_DIR, TeacherConfig
from stages._batching import Timer, objects, release_freed_heap, rows_ok, with_oom_backoff
from stages.records import encode_masks
from teachers.detector import PersonDetector
from teachers.mm import pick_device
from teachers.weights import checkpoint_path

__all__ = ["DetectStage"]


class DetectStage:
    """Reads: color, error_reason. Writes: boxes (P, 4), scores (P,), mask_rle (P strings), seconds_detect."""

    reads = ("color", "error_reason")
    writes = ("boxes", "scores", "mask_rle", "seconds_detect")

    def __init__(self, config: TeacherConfig, weights_dir: str | Path):
        torch.set_num_threads(config.run.torch_threads)
        self.detector = PersonDetector(config.detector, checkpoint_path(weights_dir, config.detector.checkpoint),
                                       pick_device(config.device), config.thresholds.box_score, CONFIG_DIR,
                                       precision=config.precision, channels_last=config.channels_last)

    def _detect(self, images: list) -> list:
        return [(d.boxes, d.scores, encode_masks(d.masks)) for d in self.detector(images)]

    def __call__(self, batch: dict) -> dict:
        with Timer("detect") as timer:
            rows = len(batch["frame_id"])
            boxes, scores, masks = [np.zeros((0, 4), np.float32)] * rows, [np.zeros(0, np.float32)] * rows, [[]] * rows
            ok = rows_ok(batch)
            results = with_oom_backoff(self._detect, [batch["color"][i] for i in ok], "detect")
            for i, (b, s, m) in zip(ok, results):
                boxes[i], scores[i], masks[i] = b, s, m
            batch = dict(batch, boxes=objects(boxes), scores=objects(scores), mask_rle=objects(masks))
            release_freed_heap()
        return timer.stamp(batch)
