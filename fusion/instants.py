"""Instants: the frames of different cameras taken at the same moment, found from their timestamps.

Multi-view fusion triangulates the persons of one instant's views. Cameras of one rig are synchronised (MVOR's
three Kinects, a synthetic rig) or nearly so: their timestamps of one moment differ by a few milliseconds, while
consecutive moments of one camera are a frame period apart (33 ms at 30 fps). An instant starts at the earliest
frame not yet placed and takes every later frame within `tolerance_s` of that first one, one frame per camera; a
second frame of a camera already in the instant starts the next one. Anchoring on the first frame (not on the
last one added) keeps jitter from chaining moments together.

Not for: which person of one view is which in another (`fusion.association`), or the 3D (`fusion.triangulation`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["group_instants", "DEFAULT_TOLERANCE_S"]

# Half a frame period at 30 fps: two moments of one camera are never within it, one moment's views always are
# for cameras triggered together (MVOR's are synchronised; their timestamps agree to the millisecond).
DEFAULT_TOLERANCE_S = 1 / 60


def group_instants(timestamps, camera_ids, tolerance_s: float = DEFAULT_TOLERANCE_S) -> np.ndarray:
    """The instant of every frame, numbered 0, 1, ... in time order (int64, the frames' order). A frame without
    a timestamp (NaN) is an instant of its own, after the others. Raises ValueError when the two columns differ
    in length or the tolerance is negative."""
    times = np.asarray(timestamps, dtype=np.float64)
    cameras = np.asarray(camera_ids, dtype=object)
    if times.shape != cameras.shape or times.ndim != 1:
        raise ValueError(f"timestamps {times.shape} and camera ids {cameras.shape} must be two columns of one length")
    if not tolerance_s >= 0:
        raise ValueError(f"the tolerance must be >= 0 seconds, got {tolerance_s}")
    instants = np.empty(len(times), dtype=np.int64)
    timed = np.flatnonzero(np.isfinite(times))
    order = timed[np.lexsort((cameras[timed].astype(str), times[timed]))]  # by time, then camera: deterministic
    current, start, members = -1, -np.inf, set()
    for frame in order:
        if times[frame] - start > tolerance_s or cameras[frame] in members:
            current, start, members = current + 1, times[frame], set()
        members.add(cameras[frame])
        instants[frame] = current
    untimed = np.flatnonzero(~np.isfinite(times))
    instants[untimed] = current + 1 + np.arange(len(untimed))
    return instants
