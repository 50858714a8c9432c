"""A stage's own exception isolated to the frames that raise it (issue: one hostile file must not stop a run).

`run_stage(spec, stage, batch)` is how every executor calls a stage, a fused stage part by part: a frame whose
input makes the stage raise becomes a rejected row (`stage_error`, naming the stage and the exception), and
the rest of its batch is labelled.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from orpose.frames.errors import StageError
from orpose.stages.rows import REJECT_DETAIL, REJECT_REASON

if TYPE_CHECKING:
    from orpose.stages.graph import StageSpec

__all__ = ["run_stage", "check_written"]

log = logging.getLogger(__name__)


def check_written(spec: StageSpec, batch: dict) -> dict:
    missing = [c for c in (*spec.writes, *spec.timings) if c not in batch]
    if missing:
        raise RuntimeError(f"stage '{spec.name}' did not write the column(s) it declares: {', '.join(missing)}")
    return batch


def _take(batch: dict, rows: np.ndarray) -> dict:
    """The batch's rows `rows` (every column indexed alike)."""
    return {key: column[rows] for key, column in batch.items()}


def _failing_rows(stage, batch: dict, rows: np.ndarray) -> list[tuple[int, BaseException]]:
    """The rows of `rows` on which `stage` raises, found by bisection (a batch of 8 with one bad frame: 6 calls),
    each with its exception."""
    if not len(rows):
        return []
    try:
        stage(_take(batch, rows))
        return []
    except Exception as error:
        if len(rows) == 1:
            return [(int(rows[0]), error)]
        half = len(rows) // 2
        return _failing_rows(stage, batch, rows[:half]) + _failing_rows(stage, batch, rows[half:])


def run_stage(spec: StageSpec, stage, batch: dict) -> dict:
    """`stage(batch)`, with a stage's own exception isolated to the frames that raise it: the batch is bisected
    down to them, they become rejected rows (`stage_error`, the stage, the exception's type and message; the
    traceback goes to the log), and the stage runs again on the batch, where it passes rejected rows through
    as it does decode's rejects. Every other frame of the batch is labelled. An error that no single frame
    raises (the stage is broken whatever its input) is raised as it is. A fused stage (`spec.parts`) is run
    part by part, each isolated so: its rejects name the part that raised."""
    if spec.parts:
        for part_spec, part in zip(spec.parts, stage.stages):
            batch = run_stage(part_spec, part, batch)
        return check_written(spec, batch)
    try:
        return check_written(spec, stage(batch))
    except Exception:
        if REJECT_REASON not in batch:  # decode writes the reasons: it isolates its frames itself
            raise
        pending = np.flatnonzero(batch[REJECT_REASON] == "")
        failing = _failing_rows(stage, batch, pending)
        if not failing:
            raise
        # object arrays: Ray Data may hand strings over as fixed-width unicode, which would cut the new ones short
        reasons, details = batch[REJECT_REASON].astype(object), batch[REJECT_DETAIL].astype(object)
        for row, row_error in failing:
            rejected = StageError(
                str(batch["frame_id"][row]),
                str(batch["color_path"][row]) if "color_path" in batch else None,
                f"stage '{spec.name}' raised {type(row_error).__name__}: {row_error}",
            )
            reasons[row], details[row] = rejected.reason, str(rejected)
            log.error("%s", rejected, exc_info=row_error)
        # the stages pass rejected rows through by their reason (`stages.rows.rows_ok`); their other columns stay
        # as they are (Ray Data may hand equal-sized images over as one dense array, which is not edited here)
        marked = dict(batch, **{REJECT_REASON: reasons, REJECT_DETAIL: details})
        return check_written(spec, stage(marked))
