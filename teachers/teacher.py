"""The teacher: detector -> keypoints -> lifter, built from one TeacherConfig.

`Teacher(config)(images)` labels a batch of frames in one call per model stage: all views of all
frames together through the detector, all crops of all persons through the keypoint model, all
poses through the lifter. The pipeline's stages wrap the three parts separately; this class is
the one-process path (tests, `labels bench`'s reference, notebooks).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from configs.schema import CONFIG_DIR, TeacherConfig
from teachers.detector import PersonDetector
from teachers.keypoints import TopDownKeypoints
from teachers.lifter import Lifter
from teachers.mm import pick_device
from teachers.weights import WeightsMissingError, checkpoint_path, missing_checkpoints, missing_message

__all__ = ["Teacher", "TeacherOutput"]


@dataclass
class TeacherOutput:
    """One frame's raw teacher output (before soft/hard label sets are made)."""

    boxes: np.ndarray  # (P, 4) xyxy frame pixels
    scores: np.ndarray  # (P,)
    masks: np.ndarray  # (P, H, W) bool
    keypoints: np.ndarray  # (P, 17, 3) COCO x, y, confidence
    spread: np.ndarray  # (P, 17) px, keypoint spread across TTA views
    pose3d: np.ndarray  # (P, 17, 3) H36M root-relative mm, lifted from all keypoints (soft)


class Teacher:
    def __init__(self, config: TeacherConfig, weights_dir: str | Path | None = None):
        self.config = config
        weights_dir = Path(weights_dir or config.weights_dir)
        missing = missing_checkpoints(config, weights_dir)
        if missing:
            raise WeightsMissingError(missing_message(config, missing))
        self.device = pick_device(config.device)
        speed = dict(precision=config.precision, channels_last=config.channels_last)
        self.detector = PersonDetector(config.detector, checkpoint_path(weights_dir, config.detector.checkpoint),
                                       self.device, config.thresholds.box_score, CONFIG_DIR, **speed)
        self.keypoints = TopDownKeypoints(config.keypoints, checkpoint_path(weights_dir, config.keypoints.checkpoint),
                                          self.device, CONFIG_DIR, **speed)
        self.lifter = Lifter(config.lifter, checkpoint_path(weights_dir, config.lifter.checkpoint), self.device, CONFIG_DIR,
                             precision=config.precision)

    @property
    def checkpoint_sha256(self) -> dict[str, str]:
        return {self.config.detector.checkpoint: self.detector.checkpoint_sha256,
                self.config.keypoints.checkpoint: self.keypoints.checkpoint_sha256,
                self.config.lifter.checkpoint: self.lifter.checkpoint_sha256}

    def __call__(self, images: list[np.ndarray]) -> list[TeacherOutput]:
        detections = self.detector(images)
        people = self.keypoints(images, [d.boxes for d in detections])
        counts = [len(d) for d in detections]
        all_keypoints = np.concatenate([p.keypoints for p in people]) if sum(counts) else np.zeros((0, 17, 3))
        all_boxes = np.concatenate([d.boxes for d in detections]) if sum(counts) else np.zeros((0, 4))
        lifted = self.lifter(all_keypoints, all_boxes)
        splits = np.cumsum(counts)[:-1]
        return [TeacherOutput(d.boxes, d.scores, d.masks, p.keypoints, p.spread, pose)
                for d, p, pose in zip(detections, people, np.split(lifted, splits))]
