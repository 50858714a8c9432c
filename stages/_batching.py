"""Helpers shared by the model stages: out-of-memory back-off and handing freed heap back to the OS.
(The row schema, timings included, is `stages.rows`.)"""

from __future__ import annotations

import logging
from typing import Callable

__all__ = ["with_oom_backoff", "is_out_of_memory", "release_freed_heap"]

log = logging.getLogger(__name__)


# torch is imported where it is used, not at the top: the CPU stages (decode, assemble) import this
# module too, and torch costs each of their Ray workers ~300 MB of resident memory for nothing.


def is_out_of_memory(error: BaseException) -> bool:
    # torch.cuda.OutOfMemoryError by name: the CPU stages' workers (stages.isolation) never import torch for this
    if type(error).__name__ == "OutOfMemoryError":
        return True
    text = str(error).lower()
    return isinstance(error, (RuntimeError, MemoryError)) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def with_oom_backoff(run: Callable[[list], list], items: list, stage: str = "") -> list:
    """`run(items)`, and on an out-of-memory error the same on each half, down to one item."""
    try:
        return run(items)
    except (RuntimeError, MemoryError) as error:
        if not is_out_of_memory(error) or len(items) <= 1:
            raise
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        half = len(items) // 2
        log.warning("%s: out of memory on %d frames, retrying as %d + %d", stage, len(items), half, len(items) - half)
        return with_oom_backoff(run, items[:half], stage) + with_oom_backoff(run, items[half:], stage)


def _glibc_malloc_trim():
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
        return None


_MALLOC_TRIM = _glibc_malloc_trim()


def release_freed_heap() -> None:
    """Hand the heap's free pages back to the OS (glibc `malloc_trim`); a no-op elsewhere.

    A model stage allocates tensors of a different size for every batch (the number of persons
    varies), and glibc keeps the freed pages between them: the keypoint worker grew by ~300 MB over
    160 frames. Trimming after each batch costs milliseconds and measured -200 MB there.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
