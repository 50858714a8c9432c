"""AssembleStage: label sets, depth transfer and camera-frame 3D; one FrameRecord per row (CPU)."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from configs.schema import TeacherConfig
from frames.calibration import CameraCalibration
from frames.decode import decode_depth_bytes
from frames.errors import FrameError
from frames.sources import depth_counts_to_mm
from stages._batching import Timer, objects
from stages.decode import ref_from_row
from stages.records import labelled_record, rejected_record

__all__ = ["AssembleStage"]


class _Rejected(FrameError):
    """A frame error carried through the pipeline as its reason and message."""

    def __init__(self, reason: str, detail: str):
        self.reason, self.detail, self.frame_id, self.path = reason, detail, "", None
        Exception.__init__(self, detail)


class AssembleStage:
    """Reads: everything the earlier stages wrote. Writes: record (a label_store FrameRecord),
    seconds_assemble. Removes: depth_encoded and the per-person columns (they live in the record)."""

    reads = ("depth_encoded", "boxes", "scores", "mask_rle", "keypoints", "spread", "pose_soft", "pose_hard", "error_reason")
    writes = ("record", "seconds_assemble")

    def __init__(self, config: TeacherConfig, calibrations: Mapping[str, CameraCalibration]):
        self.thresholds = config.thresholds
        self.calibrations = dict(calibrations)

    def __call__(self, batch: dict) -> dict:
        with Timer("assemble") as timer:
            records = []
            for i in range(len(batch["frame_id"])):
                ref = ref_from_row(batch, i)
                calibration = self.calibrations[ref.camera_id]
                if batch["error_reason"][i]:
                    records.append(rejected_record(ref, calibration, _Rejected(batch["error_reason"][i], batch["error_detail"][i])))
                    continue
                t = self.thresholds
                depth_encoded = batch["depth_encoded"][i]
                depth_mm = None if not depth_encoded else depth_counts_to_mm(
                    decode_depth_bytes(depth_encoded, ref.depth_path, ref.frame_id, calibration.depth_grid), calibration.depth_unit_mm)
                records.append(labelled_record(
                    ref, calibration, depth_mm, np.asarray(batch["boxes"][i]).reshape(-1, 4),
                    np.asarray(batch["scores"][i]), batch["mask_rle"][i], batch["keypoints"][i], batch["spread"][i],
                    batch["pose_soft"][i], batch["pose_hard"][i], t.keypoint_score, t.min_keypoints, t.depth_radius_px))
            dropped = {"depth_encoded", "boxes", "scores", "mask_rle", "keypoints", "spread", "pose_soft", "pose_hard"}
            batch = {k: v for k, v in batch.items() if k not in dropped}
            batch["record"] = objects(records)
        return timer.stamp(batch)
