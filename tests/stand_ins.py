"""Stand-ins for the teacher's model stages, with the real stages' columns: they label no person, take a set
time per batch and can raise on chosen frames. For tests of how the executors and the driver move batches
(spread, commits, stage errors), which are the same whatever the models compute."""

import time
from dataclasses import replace

import numpy as np

from orpose.stages.graph import build_graph, default_graph, fuse_models
from orpose.stages.rows import Timer, objects

EMPTY = {
    "boxes": np.zeros((0, 4), np.float32),
    "scores": np.zeros(0, np.float32),
    "mask_rle": [],
    "keypoints": np.zeros((0, 17, 3), np.float32),
    "spread": np.zeros((0, 17), np.float32),
    "hard_mask": np.zeros((0, 17), bool),
    "hard_valid": np.zeros(0, bool),
    "pose_soft": np.zeros((0, 17, 3), np.float32),
    "pose_hard": np.zeros((0, 17, 3), np.float32),
}


def stand_in(name: str, writes: tuple[str, ...], seconds: float = 0.0, fail_on: str | None = None, raises=None):
    class StandIn:
        """Writes the columns of model stage `name` (no person found) after `seconds` of work per batch; raises
        when a frame id of the batch contains `fail_on` (passes rejected rows through): ZeroDivisionError, or what
        `raises(frame_id)` returns (None: nothing this time)."""

        @classmethod
        def from_config(cls, context):
            return cls()

        def __call__(self, batch: dict) -> dict:
            with Timer(name) as timer:
                time.sleep(seconds)
                for frame_id, reason in zip(batch["frame_id"], batch["reject_reason"]):
                    if fail_on is not None and fail_on in str(frame_id) and not reason:
                        error = raises(frame_id) if raises else ZeroDivisionError(f"injected into {frame_id}")
                        if error is not None:
                            raise error
                n = len(batch["frame_id"])
                for column in writes:
                    batch[column] = objects([EMPTY[column]] * n)
                if name == "keypoints":
                    batch.pop("color", None)
            return timer.stamp(batch)

    StandIn.__name__ = f"StandIn{name.title()}"
    return StandIn


def stand_in_graph(
    seconds: dict | None = None, fail_on: dict | None = None, fused: bool | str = True, raises: dict | None = None
):
    """The default graph with each model stage replaced by a stand-in of its columns (fused into one actor;
    fused="whole": decode and assemble in it too)."""
    seconds, fail_on, raises = seconds or {}, fail_on or {}, raises or {}
    separate = default_graph(fused=False)
    stages = [
        replace(
            spec,
            cls=stand_in(
                spec.name, spec.writes, seconds.get(spec.name, 0.0), fail_on.get(spec.name), raises.get(spec.name)
            ),
        )
        if spec.kind == "model"
        else spec
        for spec in separate.stages
    ]
    graph = build_graph(stages, separate.source_columns)
    return fuse_models(graph, whole=fused == "whole") if fused else graph
