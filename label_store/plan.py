"""A run's plan: every frame of the source assigned to a shard, written once as a stream, read in parts.

    RUN/plan/plan.json          format, version, shard_size, num_frames, num_shards, the source's
                                fingerprint, and the parts: [{file, first_shard, shards, frames}]
    RUN/plan/part-00000.parquet one row per frame, in source order (PLAN_SCHEMA); part k holds the
    RUN/plan/part-00001.parquet whole shards [first_shard, first_shard + shards)

Planning reads the source as batches (`FrameSource.iter_ref_batches`) and appends them to the
current part, so the driver never holds the listing: its memory is one batch plus 8 bytes per
frame (the id hashes that check the ids are unique). The plan folder is written under a temporary
name and renamed: a killed planner leaves no half plan.

What is pending is decided from file names alone (`manifest/shard-N.json` is a shard's commit
point, `label_store.shard`), and the pending frames are read back from the parts that hold pending
shards: by Ray's read tasks on the workers (`pipeline.executors.plan_dataset`), or as a stream in
this process (`PendingFrames.iter_batches`, the local executor).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from orpose.errors import OrPoseError
from orpose.frames import durable
from orpose.frames.errors import SourceError
from orpose.frames.sources import REF_COLUMNS
from orpose.label_store.shard import committed_shards
from orpose.label_store.space import disk_full_as_error

__all__ = [
    "PLAN_DIR",
    "PLAN_SCHEMA",
    "Plan",
    "PlanPart",
    "PlanError",
    "id_hashes",
    "PendingFrames",
    "pending_rows",
    "write_plan",
    "read_plan",
    "pending_frames",
]

PLAN_DIR = "plan"
PLAN_FORMAT = "or-pose-labels/plan"
PLAN_VERSION = 2
# position: the frame's index in the source (orders the frames of a shard); the rest are the source columns.
PLAN_SCHEMA = pa.schema(
    [
        ("position", pa.int64()),
        ("frame_id", pa.string()),
        ("shard_index", pa.int64()),
        ("camera_id", pa.string()),
        ("color_path", pa.string()),
        ("depth_path", pa.string()),
        ("timestamp", pa.float64()),
    ]
)
FRAMES_PER_PART = 262_144  # about 30 MB of Parquet per part: one Ray read task each


class PlanError(OrPoseError, ValueError):
    """A run directory's plan cannot be read."""


def id_hashes(frame_ids: list[str]) -> np.ndarray:
    """int64 hashes of frame ids (this process's string hash): 8 bytes per frame, for set checks over millions."""
    return np.fromiter(map(hash, frame_ids), dtype=np.int64, count=len(frame_ids))


@dataclass(frozen=True)
class PlanPart:
    file: str  # relative to the plan folder
    first_shard: int
    shards: int
    frames: int


@dataclass(frozen=True)
class Plan:
    folder: Path
    shard_size: int
    num_frames: int
    num_shards: int
    parts: tuple[PlanPart, ...]
    fingerprint: str | None  # the source's, when it has one (`FrameSource.fingerprint`)

    def shard_frames(self, shard: int) -> int:
        """How many frames shard `shard` holds (every shard is full but the last)."""
        if not 0 <= shard < self.num_shards:
            raise IndexError(f"shard {shard} is not in the plan ({self.num_shards} shards)")
        return min(self.shard_size, self.num_frames - shard * self.shard_size)

    def parts_of(self, shards: np.ndarray) -> list[PlanPart]:
        """The parts that hold any of `shards` (sorted shard indices)."""
        return [
            part
            for part in self.parts
            if np.any((shards >= part.first_shard) & (shards < part.first_shard + part.shards))
        ]

    def iter_batches(
        self, columns: list[str] | None = None, shards: np.ndarray | None = None, batch_size: int = 65536
    ) -> Iterator[pa.RecordBatch]:
        """The plan's rows in source order (only those of `shards` when given), read part by part."""
        parts = self.parts if shards is None else self.parts_of(shards)
        for part in parts:
            for batch in pq.ParquetFile(self.folder / part.file).iter_batches(batch_size, columns=columns):
                if shards is not None:
                    batch = _rows_of(batch, shards)
                if batch.num_rows:
                    yield batch

    def frame_ids(self) -> Iterator[tuple[int, list[str]]]:
        """(shard index, its frame ids in order) for every shard: what `labels verify` compares with the manifest."""
        current, ids = None, []
        for batch in self.iter_batches(["frame_id", "shard_index"]):
            for frame_id, shard in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()):
                if shard != current:
                    if current is not None:
                        yield current, ids
                    current, ids = shard, []
                ids.append(frame_id)
        if current is not None:
            yield current, ids


def _rows_of(rows: pa.Table | pa.RecordBatch, shards: np.ndarray) -> pa.Table | pa.RecordBatch:
    """The rows of `rows` that belong to `shards` (all of them without a copy when every row does)."""
    keep = np.isin(rows.column("shard_index").to_numpy(), shards)
    return rows if keep.all() else rows.filter(pa.array(keep))


def _duplicate_message(folder: Path, hashes: np.ndarray) -> str | None:
    """None when every id hash is distinct; else the first id that really appears twice, with both paths."""
    ordered = np.sort(hashes)
    candidates = set(ordered[1:][ordered[1:] == ordered[:-1]].tolist())
    if not candidates:
        return None
    seen: dict[str, str] = {}
    for part in sorted(folder.glob("part-*.parquet")):
        table = pq.read_table(part, columns=["frame_id", "color_path"])
        for frame_id, color in zip(table.column(0).to_pylist(), table.column(1).to_pylist()):
            if hash(frame_id) in candidates:
                if frame_id in seen:
                    return f"frame id {frame_id!r} appears twice ({seen[frame_id]} and {color})"
                seen[frame_id] = color
    return None  # equal hashes of different ids: no duplicate


def write_plan(
    run_dir: str | Path,
    batches: Iterable[dict[str, list]],
    shard_size: int,
    fingerprint: str | None,
    source_name: str,
    frames_per_part: int | None = None,
    progress: bool = False,
) -> Plan:
    """Stream the source's ref batches (REF_COLUMNS) into RUN/plan; raises SourceError naming a duplicate id."""
    from tqdm import tqdm

    run_dir = Path(run_dir)
    final = run_dir / PLAN_DIR
    temporary = run_dir / f".{PLAN_DIR}.{os.getpid()}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    shards_per_part = max(1, (frames_per_part or FRAMES_PER_PART) // shard_size)
    part_frames = shards_per_part * shard_size
    parts: list[PlanPart] = []
    hashes: list[np.ndarray] = []
    writer: pq.ParquetWriter | None = None
    position = 0
    bar = tqdm(desc="planning", unit="frame", disable=not progress, smoothing=0.1)
    try:
        with disk_full_as_error(final, "the plan"):
            for batch in batches:
                n = len(batch["frame_id"])
                hashes.append(id_hashes(batch["frame_id"]))
                start = 0
                while start < n:  # split the batch at part boundaries
                    in_part = position % part_frames
                    take = min(n - start, part_frames - in_part)
                    if in_part == 0:
                        if writer is not None:
                            writer.close()
                        name = f"part-{len(parts):05d}.parquet"
                        writer = pq.ParquetWriter(temporary / name, PLAN_SCHEMA, compression="zstd")
                        parts.append(PlanPart(name, position // shard_size, 0, 0))
                    positions = np.arange(position, position + take, dtype=np.int64)
                    columns = {c: batch[c][start : start + take] for c in REF_COLUMNS}
                    table = pa.table({"position": positions, "shard_index": positions // shard_size, **columns})
                    writer.write_table(table.select(PLAN_SCHEMA.names).cast(PLAN_SCHEMA))
                    frames = parts[-1].frames + take
                    parts[-1] = PlanPart(parts[-1].file, parts[-1].first_shard, -(-frames // shard_size), frames)
                    position += take
                    start += take
                bar.update(n)
            if writer is not None:
                writer, closing = None, writer
                closing.close()
            if position == 0:
                raise SourceError(source_name, "the source lists no frames")
            duplicate = _duplicate_message(temporary, np.concatenate(hashes))
            if duplicate:
                raise SourceError(source_name, duplicate)
            plan = Plan(final, shard_size, position, -(-position // shard_size), tuple(parts), fingerprint)
            for part in parts:  # Arrow wrote them: synced here, before the folder gets its name
                durable.fsync_file(temporary / part.file)
            _write_plan_json(temporary / "plan.json", plan)
            durable.rename_durable(temporary, final)  # the plan appears whole or not at all
            return plan
    finally:
        bar.close()
        if writer is not None:
            try:
                writer.close()
            except OSError:
                pass  # its file goes with the temporary folder
        shutil.rmtree(temporary, ignore_errors=True)


def _write_plan_json(path: Path, plan: Plan) -> None:
    document = {
        "format": PLAN_FORMAT,
        "version": PLAN_VERSION,
        "shard_size": plan.shard_size,
        "num_frames": plan.num_frames,
        "num_shards": plan.num_shards,
        "fingerprint": plan.fingerprint,
        "parts": [vars(p) for p in plan.parts],
    }
    durable.write_durable(path, (json.dumps(document, indent=1) + "\n").encode())


def read_plan(run_dir: str | Path) -> Plan | None:
    """The run's plan, or None when it has none yet; a damaged plan.json is an error naming the file and field."""
    folder = Path(run_dir) / PLAN_DIR
    path = folder / "plan.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        if data.get("format") != PLAN_FORMAT or data.get("version") != PLAN_VERSION:
            raise ValueError(f"not a version-{PLAN_VERSION} plan (format={data.get('format')!r})")
        parts = tuple(PlanPart(**p) for p in data["parts"])
        return Plan(folder, data["shard_size"], data["num_frames"], data["num_shards"], parts, data["fingerprint"])
    except (ValueError, KeyError, TypeError) as error:
        raise PlanError(
            f"{path}: unreadable plan ({type(error).__name__}: {error}); use --new-run to plan again"
        ) from None


@dataclass(frozen=True)
class PendingFrames:
    """The planned frames of the shards not yet committed: what a run (or a retry) hands to an executor."""

    plan: Plan
    shards: np.ndarray  # sorted shard indices

    @property
    def num_frames(self) -> int:
        if not len(self.shards):
            return 0
        last = self.plan.num_shards - 1
        return len(self.shards) * self.plan.shard_size - (
            self.plan.shard_size - self.plan.shard_frames(last) if self.shards[-1] == last else 0
        )

    def iter_batches(self, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        """Source batches of `batch_size` rows (numpy columns, strings as object arrays), read as a stream."""
        for batch in self.plan.iter_batches(shards=self.shards, batch_size=batch_size):
            yield {
                name: np.array(column.to_pylist(), dtype=object)
                if pa.types.is_string(column.type)
                else column.to_numpy(zero_copy_only=False)
                for name, column in zip(batch.schema.names, batch.columns)
            }

    def part_files(self) -> list[str]:
        """The plan parts (Parquet files) that hold pending frames: one read task each on Ray
        (`pipeline.executors.plan_dataset`), each keeping the pending rows (`pending_rows`)."""
        return [str(self.plan.folder / part.file) for part in self.plan.parts_of(self.shards)]


def pending_rows(part_file: str, shards: np.ndarray) -> pa.Table:
    """The rows of the pending `shards` in the plan part `part_file`."""
    return _rows_of(pq.read_table(part_file), shards)


def pending_frames(run_dir: str | Path, plan: Plan) -> PendingFrames:
    """The planned shards without a manifest entry."""
    done = committed_shards(run_dir)
    everything = np.arange(plan.num_shards, dtype=np.int64)
    return PendingFrames(plan, everything[~np.isin(everything, done)])
