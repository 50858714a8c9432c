"""DecodeStage: frame references in, decoded images out (CPU). Bad frames are marked, not dropped."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from frames.calibration import CameraCalibration
from frames.errors import FrameError
from frames.sources import FrameRef, load_frame
from stages._batching import Timer, objects

__all__ = ["DecodeStage", "ref_from_row", "REJECTED_COLOR"]

REJECTED_COLOR = np.zeros((0, 0, 3), np.uint8)  # the color of a frame that did not decode


def ref_from_row(batch: dict, i: int) -> FrameRef:
    depth = batch["depth_path"][i]
    timestamp = float(batch["timestamp"][i])
    return FrameRef(str(batch["frame_id"][i]), str(batch["camera_id"][i]), str(batch["color_path"][i]),
                    str(depth) if depth else None, None if np.isnan(timestamp) else timestamp)


class DecodeStage:
    """Strict decoding of each frame of the batch.

    Reads: frame_id, camera_id, color_path, depth_path, timestamp.
    Writes: color (H, W, 3 uint8 BGR; 0 x 0 x 3 for a rejected frame), depth_encoded (the depth image's validated file
    bytes, b"" for color-only frames: every later stage carries this column and only the last one
    needs the depth, so it travels compressed, ~1/10 of the decoded counts), error_reason (''
    if decoded), error_detail, seconds_decode.
    """

    reads = ("frame_id", "camera_id", "color_path", "depth_path", "timestamp")
    writes = ("color", "depth_encoded", "error_reason", "error_detail", "seconds_decode")

    def __init__(self, calibrations: Mapping[str, CameraCalibration]):
        self.calibrations = dict(calibrations)

    def __call__(self, batch: dict) -> dict:
        with Timer("decode") as timer:
            colors, depths, reasons, details = [], [], [], []
            for i in range(len(batch["frame_id"])):
                ref = ref_from_row(batch, i)
                try:
                    frame = load_frame(ref, self.calibrations[ref.camera_id])
                    colors.append(frame.color_bgr)
                    depths.append(frame.depth_encoded or b"")
                    reasons.append("")
                    details.append("")
                except FrameError as error:
                    # An empty image, not None: a batch of rejected frames only would make the column
                    # Arrow's null type, which Ray Data cannot join with the image blocks (found by
                    # the CI regression's sample, whose last batch is one rejected frame).
                    colors.append(REJECTED_COLOR)
                    depths.append(b"")
                    reasons.append(error.reason)
                    details.append(str(error))
            batch = dict(batch, color=objects(colors), depth_encoded=objects(depths),
                         error_reason=np.array(reasons, dtype=object), error_detail=np.array(details, dtype=object))
        return timer.stamp(batch)
