"""The row schema of the stage graph: what a batch row holds, in one place.

A batch is a dict of equal-length columns (numpy arrays; ragged values as 1-D object arrays),
what both executors hand from stage to stage. This module owns
- the source columns (`SOURCE_COLUMNS`) and FrameRef <-> row (`rows_from_refs`, `ref_from_row`);
- a rejected frame: `reject_reason` ('' when the frame decoded) and `reject_detail` (the message),
  written once by decode from the `FrameError` and carried as these two strings to the shard's
  fields of the same names;
- per-stage timings (`timing_column`, `Timer`).
The columns each stage reads and writes are declared in `stages.graph`.
"""

from __future__ import annotations

import time
from typing import Iterable, Sequence

import numpy as np

from orpose.frames.sources import FrameRef

__all__ = [
    "SOURCE_COLUMNS",
    "REJECT_REASON",
    "REJECT_DETAIL",
    "rows_from_refs",
    "batch_from_rows",
    "ref_from_row",
    "objects",
    "rows_ok",
    "num_rows",
    "timing_column",
    "Timer",
]

# frame_id .. timestamp describe the frame (FrameRef); shard_index says which shard the driver commits it to,
# position (the frame's place in the plan, `label_store.plan`) where in that shard, instant which moment it
# belongs to (-1 without multi-view fusion): the driver writes it to the frame's row.
SOURCE_COLUMNS = (
    "position", "frame_id", "shard_index", "instant", "camera_id", "color_path", "depth_path", "timestamp"
)  # fmt: skip
REJECT_REASON, REJECT_DETAIL = "reject_reason", "reject_detail"


def rows_from_refs(refs: Iterable[tuple[FrameRef, int]]) -> list[dict]:
    """(FrameRef, shard index) pairs -> source rows (plain values: Ray Data and the local executor both take them),
    positions counted in this order."""
    return [
        {
            "position": position,
            "frame_id": ref.frame_id,
            "shard_index": shard,
            "instant": -1,
            "camera_id": ref.camera_id,
            "color_path": ref.color_path,
            "depth_path": ref.depth_path or "",
            "timestamp": ref.timestamp if ref.timestamp is not None else float("nan"),
        }
        for position, (ref, shard) in enumerate(refs)
    ]


def batch_from_rows(rows: Sequence[dict]) -> dict:
    """Source rows -> one batch of columns (strings as object arrays, as Ray Data hands them to a stage)."""
    return {
        key: np.array([row[key] for row in rows], dtype=object if isinstance(rows[0][key], str) else None)
        for key in rows[0]
    }


def ref_from_row(batch: dict, i: int) -> FrameRef:
    depth = batch["depth_path"][i]
    timestamp = float(batch["timestamp"][i])
    return FrameRef(
        str(batch["frame_id"][i]),
        str(batch["camera_id"][i]),
        str(batch["color_path"][i]),
        str(depth) if depth else None,
        None if np.isnan(timestamp) else timestamp,
    )


def objects(values: Sequence) -> np.ndarray:
    """A 1-D object array (one Python object per row), what Ray Data stores for ragged values."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def num_rows(batch: dict) -> int:
    return len(batch["frame_id"])


def rows_ok(batch: dict) -> np.ndarray:
    """Indices of the rows that decoded (rejected frames pass through the model stages untouched)."""
    return np.flatnonzero(np.asarray(batch[REJECT_REASON]) == "")


def timing_column(stage: str) -> str:
    return f"seconds_{stage}"


class Timer:
    """Adds `seconds_<stage>` (the batch's wall time shared over its rows) to a batch."""

    def __init__(self, stage: str):
        self.stage = stage

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        return False

    def stamp(self, batch: dict) -> dict:
        rows = num_rows(batch)
        batch[timing_column(self.stage)] = np.full(rows, self.seconds / max(rows, 1))
        return batch
