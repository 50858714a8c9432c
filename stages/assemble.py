"""AssembleStage: depth transfer and camera-frame 3D; one FrameRecord per row (CPU)."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from orpose.frames.calibration import CameraCalibration
from orpose.frames.decode import decode_depth_bytes
from orpose.frames.sources import depth_counts_to_mm
from orpose.stages.base import Stage
from orpose.stages.context import StageContext
from orpose.stages.records import labelled_record, rejected_record
from orpose.stages.rows import REJECT_DETAIL, REJECT_REASON, num_rows, objects, ref_from_row

__all__ = ["AssembleStage", "PERSON_COLUMNS"]

# The per-person columns the model stages wrote: they live in the record from here on.
PERSON_COLUMNS = (
    "boxes",
    "scores",
    "mask_rle",
    "keypoints",
    "spread",
    "hard_mask",
    "hard_valid",
    "pose_soft",
    "pose_hard",
)


class AssembleStage(Stage):
    """record (a label_store FrameRecord) per row; drops depth_encoded and the per-person columns."""

    name, kind = "assemble", "cpu"
    reads = (
        "frame_id",
        "camera_id",
        "color_path",
        "depth_path",
        "timestamp",
        "depth_encoded",
        REJECT_REASON,
        REJECT_DETAIL,
        *PERSON_COLUMNS,
    )
    writes = ("record",)
    drops = ("depth_encoded", *PERSON_COLUMNS)

    def __init__(self, *, calibrations: Mapping[str, CameraCalibration], depth_radius_px: float):
        self.calibrations = dict(calibrations)
        self.depth_radius_px = depth_radius_px

    @classmethod
    def from_config(cls, context: StageContext) -> "AssembleStage":
        return cls(calibrations=context.calibrations, depth_radius_px=context.config.thresholds.depth_radius_px)

    def __call__(self, batch: dict) -> dict:
        with self.timer() as timer:
            records = []
            for i in range(num_rows(batch)):
                ref = ref_from_row(batch, i)
                calibration = self.calibrations[ref.camera_id]
                if batch[REJECT_REASON][i]:
                    records.append(rejected_record(ref, calibration, batch[REJECT_REASON][i], batch[REJECT_DETAIL][i]))
                    continue
                depth_encoded = batch["depth_encoded"][i]
                depth_mm = (
                    None
                    if not depth_encoded
                    else depth_counts_to_mm(
                        decode_depth_bytes(depth_encoded, ref.depth_path, ref.frame_id, calibration.depth_grid),
                        calibration.depth_unit_mm,
                    )
                )
                people = {name: batch[name][i] for name in PERSON_COLUMNS}
                people["boxes"] = np.asarray(people["boxes"]).reshape(-1, 4)
                people["scores"] = np.asarray(people["scores"])
                records.append(
                    labelled_record(ref, calibration, depth_mm, depth_radius_px=self.depth_radius_px, **people)
                )
            batch = {k: v for k, v in batch.items() if k not in self.drops}
            batch["record"] = objects(records)
        return timer.stamp(batch)
