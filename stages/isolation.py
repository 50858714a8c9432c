"""A stage's own exception isolated to the frames that raise it (one hostile file must not stop a run), and
errors that are nobody's frame kept out of the labels (issue 40).

`run_stage(spec, stage, batch)` is how every executor calls a stage, a fused stage part by part:
- a **transient** error (`is_transient`: out of memory after the stage's own batch back-off, a CUDA or device
  error, an I/O error of the frame store) is not the frames' fault: the whole batch is tried again, up to
  `TRANSIENT_RETRIES` more times with a growing pause, and if it persists the run stops with
  `TransientStageError` (nothing of the batch is stored; the same command resumes once the cause is gone);
- a frame whose input makes the stage raise anything else becomes a rejected row (`stage_error`, naming the
  stage and the exception), and the rest of its batch is labelled;
- a stage that raises on every frame of a batch (of two or more) is broken, not fed bad frames: the run stops
  with `BrokenStageError` instead of rejecting frame after frame.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import numpy as np

from orpose.errors import OrPoseError
from orpose.frames.errors import TRANSIENT_ERRNOS, FrameStoreError, StageError
from orpose.stages._batching import is_out_of_memory
from orpose.stages.rows import REJECT_DETAIL, REJECT_REASON

if TYPE_CHECKING:
    from orpose.stages.graph import StageSpec

__all__ = [
    "run_stage",
    "check_written",
    "is_transient",
    "TransientStageError",
    "BrokenStageError",
    "TRANSIENT_RETRIES",
]

log = logging.getLogger(__name__)

TRANSIENT_RETRIES = 2  # tries of a batch after the first, on a transient error
RETRY_PAUSE_S = 2.0  # before the first retry; doubled before each next one
_DEVICE_ERRORS = (  # (out of memory: `stages._batching.is_out_of_memory`, the back-off's own test)
    "cuda error",
    "cuda driver",
    "cudnn",
    "cublas_status",
    "device-side assert",
    "illegal memory access",
    "nccl",
    "hip error",
)


class TransientStageError(OrPoseError, RuntimeError):
    """A stage kept failing on a batch for a reason that is not its frames' (memory, the device, the frame
    store); nothing of the batch was stored."""


class BrokenStageError(OrPoseError, RuntimeError):
    """A stage raised on every frame of a batch: the stage (its model, its config, the install) is broken."""


def is_transient(error: BaseException) -> bool:
    """Out of memory, a CUDA or device error, an I/O error of the storage: worth a retry, never a frame's label."""
    if isinstance(error, (FrameStoreError, MemoryError)) or is_out_of_memory(error):
        return True
    if isinstance(error, OSError) and not isinstance(error, OrPoseError) and error.errno in TRANSIENT_ERRNOS:
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(marker in text for marker in _DEVICE_ERRORS)


def _free_device_memory() -> None:
    import sys

    torch = sys.modules.get("torch")  # never imported for this: the CPU stages' workers have no torch
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [""])[0][:300]


def _transient_failure(spec: StageSpec, batch: dict, tries: int, error: BaseException) -> TransientStageError:
    frames = batch.get("frame_id", [])
    first = str(frames[0]) if len(frames) else "?"
    return TransientStageError(
        f"stage '{spec.name}' failed {tries} times on a batch of {len(frames)} frames (first {first!r}) with "
        f"{type(error).__name__}: {_first_line(error)}. This is not the frames' fault (memory, the device or the "
        "frame store), so no frame was rejected for it and nothing of the batch was stored: fix the cause (a "
        "smaller run.batch_size, a free GPU, the storage) and run the same command again"
    )


def _call_retrying(spec: StageSpec, stage, batch: dict) -> dict:
    """`stage(batch)`, the batch tried again on a transient error; TransientStageError when it persists."""
    for attempt in range(TRANSIENT_RETRIES + 1):
        try:
            return stage(batch)
        except Exception as error:
            if not is_transient(error):
                raise
            if attempt == TRANSIENT_RETRIES:
                raise _transient_failure(spec, batch, attempt + 1, error) from error
            log.warning("stage '%s': %s; the batch is tried again", spec.name, _first_line(error))
            _free_device_memory()
            time.sleep(RETRY_PAUSE_S * 2**attempt)
    raise AssertionError("unreachable")


def check_written(spec: StageSpec, batch: dict) -> dict:
    missing = [c for c in (*spec.writes, *spec.timings) if c not in batch]
    if missing:
        raise RuntimeError(f"stage '{spec.name}' did not write the column(s) it declares: {', '.join(missing)}")
    return batch


def _take(batch: dict, rows: np.ndarray) -> dict:
    """The batch's rows `rows` (every column indexed alike)."""
    return {key: column[rows] for key, column in batch.items()}


def _failing_rows(spec: StageSpec, stage, batch: dict, rows: np.ndarray) -> list[tuple[int, BaseException]]:
    """The rows of `rows` on which `stage` raises, found by bisection (a batch of 8 with one bad frame: 6 calls),
    each with its exception. A transient error on the way is retried, and raised if it persists: it is never a
    frame's."""
    if not len(rows):
        return []
    try:
        _call_retrying(spec, stage, _take(batch, rows))
        return []
    except TransientStageError:
        raise
    except Exception as error:
        if len(rows) == 1:
            return [(int(rows[0]), error)]
        half = len(rows) // 2
        return _failing_rows(spec, stage, batch, rows[:half]) + _failing_rows(spec, stage, batch, rows[half:])


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
        return check_written(spec, _call_retrying(spec, stage, batch))
    except TransientStageError:
        raise
    except Exception as error:
        if REJECT_REASON not in batch:  # decode writes the reasons: it isolates its frames itself
            raise
        pending = np.flatnonzero(batch[REJECT_REASON] == "")
        failing = _failing_rows(spec, stage, batch, pending)
        if not failing:
            raise
        if len(failing) == len(pending) > 1:
            raise BrokenStageError(
                f"stage '{spec.name}' raised on every one of the {len(pending)} frames of a batch "
                f"({type(failing[0][1]).__name__}: {_first_line(failing[0][1])}): the stage is broken, not its "
                "input, so the run stops instead of rejecting every frame; the log has the traceback"
            ) from error
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
