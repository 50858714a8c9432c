"""The run index: one row per frame of a run, as arrays, for readers that must open a run of any size fast.

Frame columns (`INDEX_COLUMNS`): `frame_id` (bytes, UTF-8), `shard` (the shard's index in the run), `row` (the
frame's row in that shard), `status` (0 labelled, 1 rejected), `reject_reason` (bytes, b'' when labelled),
`camera_id` (bytes), `timestamp` (seconds, NaN when unknown), `persons` (person rows of the frame) and `has_depth`.

Person columns (`PERSON_INDEX_COLUMNS`, one row per person in run order: frame i owns `persons[i]` consecutive
rows): `person_score` (the detector's), `person_confidence_mean` and `person_confidence_median` (over its 17
keypoint confidences), `person_hard_keypoints` (keypoints in the hard set), `person_hard_mask` (the same as bits,
joint j = bit j, COCO order) and `person_hard_valid` (the skeleton is in the hard set). These answer counts,
rejects, score and confidence distributions and the hard share per joint without opening a shard
(`labels inspect`, `labels query`). `RunIndex` holds the frame columns; `load_person_index` reads the person
columns only when asked.

Where it lives (docs/label_format.md, "Run index"):

    RUN/index/shard-00000.npz   one part per shard, written by `commit_shard` before the shard's manifest entry
    RUN/index/index.npz         the consolidated index: every part in shard order, and `shards`, the shard
                                indices it covers; written at the end of `labels run` and by `labels index RUN`
    RUN/index/frames.parquet    the same frame columns as a Parquet table, and persons.parquet the person
    RUN/index/persons.parquet   columns with each person's frame id, for DuckDB, pandas, Polars and Spark
                                (written beside index.npz when pyarrow is installed; `labels query`)

Opening a run reads one directory listing (the manifest's entries, which say what is committed) and
`index.npz` when it covers exactly the committed shards: a fixed number of files, whatever the run's
size. A run still being written, or one written before the index existed, is indexed from its parts, and
from the shards themselves where a part is missing or predates a column; `labels index RUN` then consolidates it
(and upgrades an older run's parts).
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
    "PERSON_INDEX_COLUMNS",
    "RunIndex",
    "PersonIndex",
    "index_part",
    "person_summary",
    "person_offsets",
    "shard_run_index",
    "load_person_index",
    "write_index_tables",
    "shard_index_part",
    "write_index_part",
    "part_path",
    "committed_shard_indices",
    "load_index",
    "consolidate_index",
    "invalidate_consolidated",
]

INDEX_COLUMNS = (
    "frame_id", "shard", "row", "status", "reject_reason", "camera_id", "timestamp", "persons", "has_depth"
)  # fmt: skip
PERSON_INDEX_COLUMNS = (
    "person_score",
    "person_confidence_mean",
    "person_confidence_median",
    "person_hard_keypoints",
    "person_hard_mask",
    "person_hard_valid",
)
TABLES = ("frames.parquet", "persons.parquet")


@dataclass(frozen=True)
class RunIndex:
    """The run index's columns as arrays (no Python object per frame: safe to fork and to pickle)."""

    frame_id: np.ndarray  # (N,) bytes
    shard: np.ndarray  # (N,) int32
    row: np.ndarray  # (N,) int32
    status: np.ndarray  # (N,) int8
    reject_reason: np.ndarray  # (N,) bytes
    camera_id: np.ndarray  # (N,) bytes
    timestamp: np.ndarray  # (N,) float64
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

    @classmethod
    def of(cls, columns: dict[str, np.ndarray], shards: np.ndarray) -> RunIndex:
        """The frame columns of a part (which also holds person columns)."""
        return cls(**{name: columns[name] for name in INDEX_COLUMNS}, shards=shards)


@dataclass(frozen=True)
class PersonIndex:
    """The person columns of the run index, one row per person in run order (`PERSON_INDEX_COLUMNS`)."""

    score: np.ndarray  # (P,) float32
    confidence_mean: np.ndarray  # (P,) float32
    confidence_median: np.ndarray  # (P,) float32
    hard_keypoints: np.ndarray  # (P,) uint8
    hard_mask: np.ndarray  # (P,) uint32, joint j = bit j
    hard_valid: np.ndarray  # (P,) bool

    def __len__(self) -> int:
        return len(self.score)

    @classmethod
    def of(cls, columns: dict[str, np.ndarray]) -> PersonIndex:
        """The person columns of a part or of `index.npz` (named `person_*` there)."""
        return cls(**{name.removeprefix("person_"): columns[name] for name in PERSON_INDEX_COLUMNS})

    def hard_per_joint(self) -> np.ndarray:
        """How many persons have each joint in the hard set (17,)."""
        return np.array([int(np.count_nonzero(self.hard_mask & np.uint32(1 << j))) for j in range(17)], np.int64)


def person_offsets(persons_per_frame: np.ndarray) -> np.ndarray:
    """(N + 1,) int64: frame i owns person rows offsets[i]:offsets[i + 1] of the person columns."""
    return np.concatenate([[0], np.cumsum(persons_per_frame, dtype=np.int64)])


def _text_column(values: Sequence[str]) -> np.ndarray:
    return np.array([v.encode() for v in values], dtype=bytes) if len(values) else np.zeros(0, "S1")


def person_summary(persons: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The index's person columns from a shard's person columns (`score`, `keypoints_2d`, `hard_mask`,
    `hard_valid`, P rows)."""
    confidence = np.asarray(persons["keypoints_2d"], np.float32).reshape(-1, 17, 3)[..., 2]
    hard = np.asarray(persons["hard_mask"], bool).reshape(-1, 17)
    bits = (hard.astype(np.uint32) << np.arange(17, dtype=np.uint32)).sum(axis=1, dtype=np.uint32)
    return {
        "person_score": np.asarray(persons["score"], np.float32).reshape(-1),
        "person_confidence_mean": confidence.astype(np.float64).mean(axis=1).astype(np.float32),
        "person_confidence_median": np.median(confidence, axis=1).astype(np.float32),
        "person_hard_keypoints": hard.sum(axis=1).astype(np.uint8),
        "person_hard_mask": bits,
        "person_hard_valid": np.asarray(persons["hard_valid"], bool).reshape(-1),
    }


_NO_PERSONS = {
    "score": np.zeros(0, np.float32),
    "keypoints_2d": np.zeros((0, 17, 3), np.float32),
    "hard_mask": np.zeros((0, 17), bool),
    "hard_valid": np.zeros(0, bool),
}


def index_part(
    shard_index: int,
    frames: Sequence[dict],
    persons_per_frame: Sequence[int] | np.ndarray,
    persons: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """One shard's index rows from its frames and their persons in frame order (the records being committed, or
    the shard's columns); `persons` may be None only when no frame has persons."""
    n = len(frames)
    part = {
        "frame_id": _text_column([f["frame_id"] for f in frames]),
        "shard": np.full(n, shard_index, dtype=np.int32),
        "row": np.arange(n, dtype=np.int32),
        "status": np.array([int(f["status"]) for f in frames], dtype=np.int8),
        "reject_reason": _text_column([f["reject_reason"] for f in frames]),
        "camera_id": _text_column([f["camera_id"] for f in frames]),
        "timestamp": np.array([float(f["timestamp"]) for f in frames], dtype=np.float64),
        "persons": np.asarray(persons_per_frame, dtype=np.int32),
        "has_depth": np.array([bool(f["depth_path"]) for f in frames], dtype=bool),
    }
    summary = person_summary(persons if persons is not None else _NO_PERSONS)
    if len(summary["person_score"]) != int(part["persons"].sum()):
        raise ValueError(
            f"shard {shard_index}: {len(summary['person_score'])} person rows for {int(part['persons'].sum())} "
            "persons counted in its frames"
        )
    return {**part, **summary}


def _savez_durable(path: Path, arrays: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    # a copy, not getbuffer(): that view, caught in a traceback's reference cycle, crashed CPython 3.12.1's GC
    durable.write_durable(path, buffer.getvalue())


def invalidate_consolidated(run_dir: str | Path) -> None:
    """Drop `index/index.npz`: the run's committed shards are changing (a commit, an uncommit), so it no
    longer describes them; readers index from the parts until `labels run` or `labels index` writes it again."""
    folder = Path(run_dir) / "index"
    removed = [durable.remove(folder / name) for name in ("index.npz", *TABLES)]  # the tables describe the same
    if any(removed):
        durable.fsync_directory(folder)


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
    frame_fields = ("frame_id", "camera_id", "depth_path", "status", "reject_reason", "timestamp")
    with h5py.File(path, "r") as handle:
        group = handle["frames"]
        columns = {name: read_dataset(group[name]) for name in frame_fields}
        offsets = read_dataset(group["person_offset"])
        persons = {name: read_dataset(handle["persons"][name]) for name in _NO_PERSONS}
    frames = [
        {name: columns[name][i] for name in columns} for i in range(len(columns["frame_id"]))
    ]  # once per shard, when there is no part
    return index_part(shard_index, frames, np.diff(offsets), persons)


def shard_run_index(path: str | Path) -> RunIndex:
    """The index of a single shard file read as a run (shard 0)."""
    return RunIndex.of(shard_index_part(Path(path), 0), shards=np.zeros(1, dtype=np.int32))


def committed_shard_indices(run_dir: str | Path) -> np.ndarray:
    """The committed shards' indices (`shard.committed_shards`: one listing of the manifest folder), as int32."""
    return committed_shards(run_dir).astype(np.int32)


def _current_consolidated(run_dir: Path, shards: np.ndarray) -> RunIndex | None:
    """`index/index.npz` when it covers exactly `shards` with every column, else None (absent, stale since a
    resume, or written before a column existed)."""
    columns = _consolidated_columns(run_dir, shards, INDEX_COLUMNS)
    return None if columns is None else RunIndex.of(columns, shards)


def _consolidated_columns(run_dir: Path, shards: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray] | None:
    """`names` of `index/index.npz` (only those arrays are read) when it is current (see `_current_consolidated`)."""
    consolidated = run_dir / "index" / "index.npz"
    if not consolidated.exists():
        return None
    with np.load(consolidated) as data:
        if not np.array_equal(data["shards"], shards) or not _complete(data.files):
            return None
        return {name: data[name] for name in names}


def _complete(names: Iterable[str]) -> bool:
    return set(INDEX_COLUMNS + PERSON_INDEX_COLUMNS) <= set(names)


def _stored_part(run_dir: Path, shard_index: int, names: Sequence[str]) -> dict[str, np.ndarray] | None:
    """`names` of a shard's stored part; None where it is missing or predates a column."""
    path = part_path(run_dir, shard_index)
    if not path.exists():
        return None
    with np.load(path) as data:
        return {name: data[name] for name in names} if _complete(data.files) else None


def _read_part(run_dir: Path, shard_index: int, names: Sequence[str]) -> dict[str, np.ndarray]:
    """A shard's part of the index (`names` of it), or its columns read from the shard itself where the part is
    missing or predates a column."""
    part = _stored_part(run_dir, shard_index, names)
    if part is None:
        part = shard_index_part(shard_path(run_dir, shard_index), int(shard_index))
    return {name: part[name] for name in names}


def _concatenate(parts: Sequence[dict[str, np.ndarray]], names: Sequence[str]) -> dict[str, np.ndarray]:
    if not parts:
        empty = index_part(0, [], [])
        return {name: empty[name] for name in names}
    return {name: np.concatenate([p[name] for p in parts]) for name in names}


def load_index(run_dir: str | Path) -> RunIndex:
    """The frame columns of a run's committed shards (see the module docstring for which files it reads)."""
    run_dir = Path(run_dir)
    shards = committed_shard_indices(run_dir)
    current = _current_consolidated(run_dir, shards)
    if current is not None:
        return current
    parts = [_read_part(run_dir, int(s), INDEX_COLUMNS) for s in shards]
    return RunIndex.of(_concatenate(parts, INDEX_COLUMNS), shards)


def load_person_index(run_dir: str | Path) -> PersonIndex:
    """The person columns of a run's committed shards, in the order of `load_index`'s frames (frame i owns
    `persons[i]` consecutive rows). From `index.npz` when current (only these arrays are read), else the parts;
    for a single shard file, from its columns."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        return PersonIndex.of(shard_index_part(run_dir, 0))
    shards = committed_shard_indices(run_dir)
    columns = _consolidated_columns(run_dir, shards, PERSON_INDEX_COLUMNS)
    if columns is None:
        parts = [_read_part(run_dir, int(s), PERSON_INDEX_COLUMNS) for s in shards]
        columns = _concatenate(parts, PERSON_INDEX_COLUMNS)
    return PersonIndex.of(columns)


def write_index_tables(run_dir: str | Path, index: RunIndex, persons: PersonIndex) -> list[Path]:
    """`index/frames.parquet` and `index/persons.parquet` (module docstring), for the tools data engineers use;
    [] without pyarrow (the base install), which only this project's readers need not."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return []
    folder = Path(run_dir) / "index"

    def text(values: np.ndarray) -> "pa.Array":
        return pa.array(values, type=pa.binary()).cast(pa.string())

    frames = pa.table(
        {
            "frame_id": text(index.frame_id),
            "shard": index.shard,
            "row": index.row,
            "status": index.status,
            "reject_reason": text(index.reject_reason),
            "camera_id": text(index.camera_id),
            "timestamp": index.timestamp,
            "persons": index.persons,
            "has_depth": index.has_depth,
        }
    )
    frame_of = np.repeat(np.arange(len(index), dtype=np.int64), index.persons)
    first = person_offsets(index.persons)
    table = pa.table(
        {
            "frame_id": frames.column("frame_id").take(frame_of),
            "person": (np.arange(len(frame_of)) - first[frame_of]).astype(np.int32),
            "camera_id": frames.column("camera_id").take(frame_of),
            "shard": index.shard[frame_of],
            "row": index.row[frame_of],
            **{name: getattr(persons, name) for name in (f.removeprefix("person_") for f in PERSON_INDEX_COLUMNS)},
        }
    )
    written = []
    for name, data in zip(TABLES, (frames, table)):
        buffer = pa.BufferOutputStream()
        pq.write_table(data, buffer, compression="zstd")
        durable.write_durable(folder / name, buffer.getvalue().to_pybytes())
        written.append(folder / name)
    return written


def consolidate_index(run_dir: str | Path, rebuild: bool = False) -> RunIndex:
    """Write `index/index.npz` for the committed shards (`labels index RUN`, and the end of `labels run`), and
    its Parquet tables (`write_index_tables`). A shard without its part, or with a part that predates a column,
    gets one from its own columns; `rebuild` rewrites every part that way."""
    run_dir = Path(run_dir)
    committed = committed_shard_indices(run_dir)
    current = None if rebuild else _current_consolidated(run_dir, committed)
    consolidated = run_dir / "index" / "index.npz"
    with disk_full_as_error(consolidated, "run index"):
        if current is None:
            every, parts = INDEX_COLUMNS + PERSON_INDEX_COLUMNS, []
            for shard_index in committed:
                part = None if rebuild else _stored_part(run_dir, int(shard_index), every)
                if part is None:  # missing, older than a column, or rebuilt on request
                    part = shard_index_part(shard_path(run_dir, shard_index), int(shard_index))
                    write_index_part(run_dir, int(shard_index), part)
                parts.append(part)
            invalidate_consolidated(run_dir)
            columns = _concatenate(parts, every)
            _savez_durable(consolidated, {**columns, "shards": committed})
            current = RunIndex.of(columns, committed)
            persons = PersonIndex.of(columns)
        else:
            persons = None  # read only if the tables are missing
        if not all((consolidated.parent / name).exists() for name in TABLES):
            write_index_tables(run_dir, current, persons if persons is not None else load_person_index(run_dir))
    return current
