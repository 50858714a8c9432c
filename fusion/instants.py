"""Instants: the frames of different cameras taken at the same moment, found from their timestamps.

Multi-view fusion triangulates the persons of one instant's views. Cameras of one rig are synchronised (MVOR's
three Kinects, a synthetic rig) or nearly so: their timestamps of one moment differ by a few milliseconds, while
consecutive moments of one camera are a frame period apart (33 ms at 30 fps). An instant starts at the earliest
frame not yet placed and takes every later frame within `tolerance_s` of that first one, one frame per camera; a
second frame of a camera already in the instant starts the next one. Anchoring on the first frame (not on the
last one added) keeps jitter from chaining moments together.

A source may name each frame's instant instead (`instant_keys`: a manifest's `instant` field, an MVOR tree's
day and frame number): frames with one key are one instant, whatever their timestamps. On MVOR's file the keys
give its 732 instants exactly, while its capture times differ by up to 64 ms within an instant: by time, the
default tolerance reproduces 625 of them (docs/fusion.md).

Not for: which person of one view is which in another (`fusion.association`), or the 3D (`fusion.triangulation`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["group_instants", "group_by_key", "DEFAULT_TOLERANCE_S"]

# Half a frame period at 30 fps: two moments of one camera are never within it, one moment's views always are
# for cameras triggered together (MVOR's are synchronised; their timestamps agree to the millisecond).
DEFAULT_TOLERANCE_S = 1 / 60


def group_instants(timestamps, camera_ids, tolerance_s: float = DEFAULT_TOLERANCE_S, instant_keys=None) -> np.ndarray:
    """The instant of every frame, numbered 0, 1, ... in time order (int64, the frames' order). A frame without
    a timestamp (NaN) is an instant of its own, after the others. With `instant_keys` (a string per frame, ''
    for none) given for every frame, the keys decide instead (`group_by_key`). Raises ValueError when the columns
    differ in length, the tolerance is negative, only some frames have a key, or a camera appears twice under
    one key."""
    times = np.asarray(timestamps, dtype=np.float64)
    cameras = np.asarray(camera_ids, dtype=object)
    if times.shape != cameras.shape or times.ndim != 1:
        raise ValueError(f"timestamps {times.shape} and camera ids {cameras.shape} must be two columns of one length")
    if not tolerance_s >= 0:
        raise ValueError(f"the tolerance must be >= 0 seconds, got {tolerance_s}")
    if instant_keys is not None:
        keys = np.asarray([str(k) if k is not None else "" for k in instant_keys], dtype=object)
        keyed = keys != ""
        if keyed.any():
            if not keyed.all():
                first = int(np.argmin(keyed))
                raise ValueError(
                    f"frame {first} (camera {str(cameras[first])!r}) has no instant key while others have one: "
                    "give every frame its instant, or none"
                )
            return group_by_key(keys, cameras, times)
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


def group_by_key(keys, camera_ids, timestamps=None) -> np.ndarray:
    """Instants from explicit keys: the frames of one key are one instant. Instants are numbered in the order of
    their earliest timestamp (keys without any after them), then of their key. Raises ValueError naming the key
    and the camera when a camera appears twice under one key."""
    keys = np.asarray(keys, dtype=object).astype(str)
    cameras = np.asarray(camera_ids, dtype=object).astype(str)
    times = np.full(len(keys), np.nan) if timestamps is None else np.asarray(timestamps, np.float64)
    names, index = np.unique(keys, return_inverse=True)
    camera_names, camera_index = np.unique(cameras, return_inverse=True)
    pairs, counts = np.unique(np.stack([index, camera_index], axis=1), axis=0, return_counts=True)
    twice = np.flatnonzero(counts > 1)
    if len(twice):
        key, camera = str(names[pairs[twice[0], 0]]), str(camera_names[pairs[twice[0], 1]])  # numpy 2: no np.str_
        raise ValueError(f"instant {key!r} holds two frames of camera {camera!r}: an instant takes one frame a camera")
    earliest = np.full(len(names), np.inf)
    finite = np.isfinite(times)
    np.minimum.at(earliest, index[finite], times[finite])
    order = np.lexsort((names, earliest))  # by earliest time, then key
    number = np.empty(len(names), dtype=np.int64)
    number[order] = np.arange(len(names))
    return number[index]
