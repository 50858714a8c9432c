"""Helpers shared by the model stages: rows of a Ray Data batch, timing, out-of-memory back-off."""

from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

import numpy as np
import torch

__all__ = ["objects", "rows_ok", "with_oom_backoff", "is_out_of_memory", "Timer"]

log = logging.getLogger(__name__)


def objects(values: Sequence) -> np.ndarray:
    """A 1-D object array (one Python object per row), what Ray Data stores for ragged values."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def rows_ok(batch: dict) -> np.ndarray:
    """Indices of the rows that decoded (rejected frames pass through the model stages untouched)."""
    return np.flatnonzero(np.asarray(batch["error_reason"]) == "")


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, (RuntimeError, MemoryError)) and ("out of memory" in text or "can't allocate memory" in text)


def with_oom_backoff(run: Callable[[list], list], items: list, stage: str = "") -> list:
    """`run(items)`, and on an out-of-memory error the same on each half, down to one item."""
    try:
        return run(items)
    except (RuntimeError, MemoryError) as error:
        if not is_out_of_memory(error) or len(items) <= 1:
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        half = len(items) // 2
        log.warning("%s: out of memory on %d frames, retrying as %d + %d", stage, len(items), half, len(items) - half)
        return with_oom_backoff(run, items[:half], stage) + with_oom_backoff(run, items[half:], stage)


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
        rows = len(batch["frame_id"])
        batch[f"seconds_{self.stage}"] = np.full(rows, self.seconds / max(rows, 1))
        return batch
