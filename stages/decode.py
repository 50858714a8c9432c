"""DecodeStage: frame references in, decoded images out (CPU). Bad frames are marked, not dropped."""

from __future__ import annotations

import logging
from typing import Mapping

import numpy as np

from orpose.frames.calibration import CameraCalibration
from orpose.frames.errors import FrameError, FrameStoreError, StageError
from orpose.frames.sources import load_frame
from orpose.stages.base import Stage
from orpose.stages.context import StageContext
from orpose.stages.rows import REJECT_DETAIL, REJECT_REASON, num_rows, objects, ref_from_row

__all__ = ["DecodeStage", "REJECTED_COLOR"]

log = logging.getLogger(__name__)

REJECTED_COLOR = np.zeros((0, 0, 3), np.uint8)  # the color of a frame that did not decode


class DecodeStage(Stage):
    """Strict decoding of each frame of the batch.

    color is H x W x 3 uint8 BGR (0 x 0 x 3 for a rejected frame); depth_encoded is the depth
    image's validated file bytes (b"" for color-only frames): every later stage carries this
    column and only the last one needs the depth, so it travels compressed, ~1/10 of the decoded
    counts. A frame that fails gets its FrameError's reason tag and message, once, here.
    """

    name, kind = "decode", "cpu"
    reads = ("frame_id", "camera_id", "color_path", "depth_path", "timestamp")
    writes = ("color", "depth_encoded", REJECT_REASON, REJECT_DETAIL)

    def __init__(self, *, calibrations: Mapping[str, CameraCalibration]):
        self.calibrations = dict(calibrations)

    @classmethod
    def from_config(cls, context: StageContext) -> "DecodeStage":
        return cls(calibrations=context.calibrations)

    def __call__(self, batch: dict) -> dict:
        with self.timer() as timer:
            colors, depths, reasons, details = [], [], [], []
            for i in range(num_rows(batch)):
                ref = ref_from_row(batch, i)
                try:
                    frame = load_frame(ref, self.calibrations[ref.camera_id])
                    colors.append(frame.color_bgr)
                    depths.append(frame.depth_encoded or b"")
                    reasons.append("")
                    details.append("")
                except FrameStoreError:
                    raise  # the storage failed, not the frame: the batch is retried (stages.isolation)
                except Exception as caught:
                    # A FrameError names its reason; any other exception of one frame (an input no check
                    # foresaw) is that frame's stage_error, its traceback in the log: the batch goes on.
                    error = (
                        caught
                        if isinstance(caught, FrameError)
                        else StageError(
                            ref.frame_id,
                            ref.color_path,
                            f"stage '{self.name}' raised {type(caught).__name__}: {caught}",
                        )
                    )
                    if not isinstance(caught, FrameError):
                        log.error("%s", error, exc_info=caught)
                    # An empty image, not None: a batch of rejected frames only would make the column
                    # Arrow's null type, which Ray Data cannot join with the image blocks (found by
                    # the CI regression's sample, whose last batch is one rejected frame).
                    colors.append(REJECTED_COLOR)
                    depths.append(b"")
                    reasons.append(error.reason)
                    details.append(str(error))
            batch = dict(
                batch,
                color=objects(colors),
                depth_encoded=objects(depths),
                **{REJECT_REASON: np.array(reasons, dtype=object), REJECT_DETAIL: np.array(details, dtype=object)},
            )
        return timer.stamp(batch)
