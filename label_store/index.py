"""The run index: one row per frame of a run, as arrays, for readers that must open a run of any size fast.

Columns (`INDEX_COLUMNS`): `frame_id` (bytes, UTF-8), `shard` (the shard's index in the run), `row` (the
frame's row in that shard), `status` (0 labelled, 1 rejected), `camera_id` (bytes), `persons` (person rows of
the frame) and `has_depth`.

Where it lives (docs/label_format.md, "Run index"):

    RUN/index/shard-00000.npz   one part per shard, written by `commit_shard` before the shard's manifest entry
    RUN/index/index.npz         the consolidated index: every part in shard order, and `shards`, the shard
                                indices it covers; written at the end of `labels run` and by `labels index RUN`

Opening a run reads one directory listing (the manifest's entries, which say what is committed) and
`index.npz` when it covers exactly the committed shards: a fixed number of files, whatever the run's
size. A run still being written, or one written before the index existed, is indexed from its parts, and
from the shards themselves where a part is missing; `labels index RUN` then consolidates it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import h5py
import numpy as np

from orpose.frames import durable
from orpose.label_store.schema import STATUS_LABELLED
from orpose.label_store.shard import committed_shards, read_dataset, shard_name, shard_path
from orpose.label_store.space import disk_full_as_error

__all__ = [
    "INDEX_COLUMNS",
    "RunIndex",
    "index_part",
    "shard_index_part",
    "write_index_part",
    "part_path",
    "committed_shard_indices",
    "load_index",
    "consolidate_index",
    "invalidate_consolidated",
]

INDEX_COLUMNS = ("frame_id", "shard", "row", "status", "camera_id", "persons", "has_depth")


@dataclass(frozen=True)
class RunIndex:
    """The run index's columns as arrays (no Python object per frame: safe to fork and to pickle)."""

    frame_id: np.ndarray  # (N,) bytes
    shard: np.ndarray  # (N,) int32
    row: np.ndarray  # (N,) int32
    status: np.ndarray  # (N,) int8
    camera_id: np.ndarray  # (N,) bytes
    persons: np.ndarray  # (N,) int32
    has_depth: np.ndarray  # (N,) bool
    shards: np.ndarray  # (S,) int32: the shard indices covered, ascending

    def __len__(self) -> int:
        return len(self.frame_id)

    def labelled(self) -> np.ndarray:
        """Positions of the labelled frames, in run order."""
        return np.flatnonzero(self.status == STATUS_LABELLED)

    def frame_id_at(self, position: int) -> str:
        return self.frame_id[position].decode()

    def columns(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in (*INDEX_COLUMNS, "shards")}


def index_part(
    shard_index: int, frames: Sequence[dict], persons_per_frame: Sequence[int] | np.ndarray
) -> dict[str, np.ndarray]:
    """One shard's index rows from its frames (the records being committed, or the shard's columns)."""
    n = len(frames)
    return {
        "frame_id": np.array([f["frame_id"].encode() for f in frames], dtype=bytes) if n else np.zeros(0, "S1"),
        "shard": np.full(n, shard_index, dtype=np.int32),
        "row": np.arange(n, dtype=np.int32),
        "status": np.array([int(f["status"]) for f in frames], dtype=np.int8),
        "camera_id": np.array([f["camera_id"].encode() for f in frames], dtype=bytes) if n else np.zeros(0, "S1"),
        "persons": np.asarray(persons_per_frame, dtype=np.int32),
        "has_depth": np.array([bool(f["depth_path"]) for f in frames], dtype=bool),
    }


def _savez_durable(path: Path, arrays: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    # a copy, not getbuffer(): that view, caught in a traceback's reference cycle, crashed CPython 3.12.1's GC
    durable.write_durable(path, buffer.getvalue())


def invalidate_consolidated(run_dir: str | Path) -> None:
    """Drop `index/index.npz`: the run's committed shards are changing (a commit, an uncommit), so it no
    longer describes them; readers index from the parts until `labels run` or `labels index` writes it again."""
    consolidated = Path(run_dir) / "index" / "index.npz"
    if durable.remove(consolidated):
        durable.fsync_directory(consolidated.parent)


def part_path(run_dir: str | Path, shard_index: int) -> Path:
    """Where a shard's part of the index lives: RUN/index/<its shard's name>.npz."""
    return Path(run_dir) / "index" / f"{shard_name(shard_index)}.npz"


def write_index_part(run_dir: str | Path, shard_index: int, part: dict[str, np.ndarray]) -> Path:
    path = part_path(run_dir, shard_index)
    path.parent.mkdir(parents=True, exist_ok=True)
    _savez_durable(path, part)
    return path


def shard_index_part(path: Path, shard_index: int) -> dict[str, np.ndarray]:
    """A part rebuilt from a shard's own columns (a run written before the index, or a lost part)."""
    with h5py.File(path, "r") as handle:
        group = handle["frames"]
        columns = {name: read_dataset(group[name]) for name in ("frame_id", "camera_id", "depth_path", "status")}
        offsets = read_dataset(group["person_offset"])
    frames = [
        {name: columns[name][i] for name in columns} for i in range(len(columns["frame_id"]))
    ]  # once per shard, when there is no part
    return index_part(shard_index, frames, np.diff(offsets))


def committed_shard_indices(run_dir: str | Path) -> np.ndarray:
    """The committed shards' indices (`shard.committed_shards`: one listing of the manifest folder), as int32."""
    return committed_shards(run_dir).astype(np.int32)


def _current_consolidated(run_dir: Path, shards: np.ndarray) -> RunIndex | None:
    """`index/index.npz` when it covers exactly `shards`, else None (absent, or stale since a resume)."""
    consolidated = run_dir / "index" / "index.npz"
    if not consolidated.exists():
        return None
    with np.load(consolidated) as data:
        if not np.array_equal(data["shards"], shards):
            return None
        return RunIndex(**{name: data[name] for name in (*INDEX_COLUMNS, "shards")})


def _concatenate(parts: Iterable[dict[str, np.ndarray]], shards: np.ndarray) -> RunIndex:
    parts = list(parts)
    if not parts:
        empty = index_part(0, [], [])
        return RunIndex(**empty, shards=shards)
    return RunIndex(**{name: np.concatenate([p[name] for p in parts]) for name in INDEX_COLUMNS}, shards=shards)


def load_index(run_dir: str | Path) -> RunIndex:
    """The index of a run's committed shards (see the module docstring for which files it reads)."""
    run_dir = Path(run_dir)
    shards = committed_shard_indices(run_dir)
    current = _current_consolidated(run_dir, shards)
    if current is not None:
        return current
    parts = []
    for shard_index in shards:
        path = part_path(run_dir, shard_index)
        if path.exists():
            with np.load(path) as data:
                parts.append({name: data[name] for name in INDEX_COLUMNS})
        else:
            parts.append(shard_index_part(shard_path(run_dir, shard_index), int(shard_index)))
    return _concatenate(parts, shards)


def consolidate_index(run_dir: str | Path, rebuild: bool = False) -> RunIndex:
    """Write `index/index.npz` for the committed shards (`labels index RUN`, and the end of `labels run`).
    A shard without its part gets one from its own columns; `rebuild` rewrites every part that way."""
    run_dir = Path(run_dir)
    committed = committed_shard_indices(run_dir)
    current = None if rebuild else _current_consolidated(run_dir, committed)
    if current is not None:  # nothing to write
        return current
    consolidated = run_dir / "index" / "index.npz"
    with disk_full_as_error(consolidated, "run index"):
        for shard_index in committed:
            if rebuild or not part_path(run_dir, shard_index).exists():
                write_index_part(
                    run_dir, int(shard_index), shard_index_part(shard_path(run_dir, shard_index), int(shard_index))
                )
        if rebuild:
            consolidated.unlink(missing_ok=True)
        index = load_index(run_dir)
        _savez_durable(consolidated, index.columns())
    return index
