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
from orpose.frames.sources import INSTANT_KEY, REF_COLUMNS
from orpose.fusion.instants import group_instants
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
PLAN_VERSION = 3
READABLE_PLAN_VERSIONS = (2, 3)  # version 2: no instants (its parts lack the column; read as -1)
# position: the frame's place in the plan (orders the frames of a shard; the source's order unless the plan is
# instant-ordered); instant: the moment the frame belongs to (`fusion.instants`), -1 without fusion; the rest
# are the source columns.
PLAN_SCHEMA = pa.schema(
    [
        ("position", pa.int64()),
        ("frame_id", pa.string()),
        ("shard_index", pa.int64()),
        ("instant", pa.int64()),
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
    # instant-ordered plans (multi-view fusion): shard k holds frames [offsets[k], offsets[k + 1]); else None
    shard_offsets: tuple[int, ...] | None = None
    instant_tolerance_s: float | None = None  # the tolerance the instants were grouped with; None: no instants

    def shard_frames(self, shard: int) -> int:
        """How many frames shard `shard` holds (every shard is full but the last, unless shards hold whole
        instants: then at most shard_size)."""
        if not 0 <= shard < self.num_shards:
            raise IndexError(f"shard {shard} is not in the plan ({self.num_shards} shards)")
        if self.shard_offsets is not None:
            return self.shard_offsets[shard + 1] - self.shard_offsets[shard]
        return min(self.shard_size, self.num_frames - shard * self.shard_size)

    def frames_in(self, shards: np.ndarray) -> int:
        """How many frames the shards `shards` (sorted shard indices) hold together."""
        shards = np.asarray(shards, dtype=np.int64)
        if not len(shards):
            return 0
        if self.shard_offsets is not None:
            offsets = np.asarray(self.shard_offsets)
            return int((offsets[shards + 1] - offsets[shards]).sum())
        last = self.num_shards - 1
        return len(shards) * self.shard_size - (self.shard_size - self.shard_frames(last) if shards[-1] == last else 0)

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


def _instant_ordered(
    batches: Iterable[dict[str, list]], shard_size: int, tolerance_s: float, source_name: str
) -> tuple[list[dict], list[int]]:
    """The source's frames in instant order (`fusion.instants`: by time, then camera), each with its instant and
    its shard: shards of whole instants, filled up to `shard_size` frames. Holds the listing's columns (about
    150 bytes a frame); returns the batches and each shard's frame count."""
    columns = (*REF_COLUMNS, INSTANT_KEY)
    tables = [
        pa.table({c: batch[c] if c in batch else [""] * len(batch["frame_id"]) for c in columns}) for batch in batches
    ]
    if not sum(t.num_rows for t in tables):
        return [], []  # the writer says the source lists no frames
    table = pa.concat_tables(tables)
    cameras = np.asarray(table.column("camera_id").to_pylist(), dtype=object)
    keys = table.column(INSTANT_KEY).to_pylist()  # the source's own instants, where it names them
    try:
        instants = group_instants(table.column("timestamp").to_numpy(), cameras, tolerance_s, keys)
    except ValueError as error:
        raise SourceError(source_name, str(error)) from None
    order = np.lexsort((cameras.astype(str), instants))
    sizes = np.bincount(instants)
    if sizes.max() > shard_size:
        raise SourceError(
            source_name,
            f"an instant holds {sizes.max()} frames (one per camera) but run.shard_size is {shard_size}: "
            "a shard holds whole instants, so make run.shard_size at least the number of cameras",
        )
    shard_of_instant = np.empty(len(sizes), dtype=np.int64)
    shard_sizes: list[int] = []
    for instant, size in enumerate(sizes.tolist()):  # greedy: an instant that does not fit starts the next shard
        if not shard_sizes or shard_sizes[-1] + size > shard_size:
            shard_sizes.append(0)
        shard_sizes[-1] += size
        shard_of_instant[instant] = len(shard_sizes) - 1
    ordered = table.take(pa.array(order))
    out = []
    for start in range(0, len(order), 65536):
        rows = ordered.slice(start, 65536)
        batch: dict = {c: rows.column(c).to_pylist() for c in REF_COLUMNS}
        batch["instant"] = instants[order[start : start + 65536]]
        batch["shard_index"] = shard_of_instant[batch["instant"]]
        out.append(batch)
    return out, shard_sizes


def write_plan(
    run_dir: str | Path,
    batches: Iterable[dict[str, list]],
    shard_size: int,
    fingerprint: str | None,
    source_name: str,
    frames_per_part: int | None = None,
    progress: bool = False,
    instant_tolerance_s: float | None = None,
) -> Plan:
    """Stream the source's ref batches (REF_COLUMNS) into RUN/plan; raises SourceError naming a duplicate id.
    `instant_tolerance_s` (multi-view fusion): frames ordered instant by instant (`fusion.instants`), shards of
    whole instants of at most `shard_size` frames; without it, source order and full shards."""
    from tqdm import tqdm

    run_dir = Path(run_dir)
    shard_sizes: list[int] | None = None
    if instant_tolerance_s is not None:  # before anything is written: a refused instant leaves no folder behind
        batches, shard_sizes = _instant_ordered(batches, shard_size, instant_tolerance_s, source_name)
    final = run_dir / PLAN_DIR
    temporary = run_dir / f".{PLAN_DIR}.{os.getpid()}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    shards_per_part = max(1, (frames_per_part or FRAMES_PER_PART) // shard_size)
    parts: list[PlanPart] = []
    hashes: list[np.ndarray] = []
    writer: pq.ParquetWriter | None = None
    position, num_shards = 0, 0
    bar = tqdm(desc="planning", unit="frame", disable=not progress, smoothing=0.1)
    try:
        with disk_full_as_error(final, "the plan"):
            for batch in batches:
                n = len(batch["frame_id"])
                hashes.append(id_hashes(batch["frame_id"]))
                positions = np.arange(position, position + n, dtype=np.int64)
                shards = (
                    np.asarray(batch["shard_index"], np.int64) if "shard_index" in batch else positions // shard_size
                )
                instants = np.asarray(batch["instant"], np.int64) if "instant" in batch else np.full(n, -1, np.int64)
                start = 0
                while start < n:  # split the batch at part boundaries (a part holds whole shards)
                    if writer is None or shards[start] >= parts[-1].first_shard + shards_per_part:
                        if writer is not None:
                            writer.close()
                        name = f"part-{len(parts):05d}.parquet"
                        writer = pq.ParquetWriter(temporary / name, PLAN_SCHEMA, compression="zstd")
                        parts.append(PlanPart(name, int(shards[start]), 0, 0))
                    first = parts[-1].first_shard
                    stop = start + int(np.searchsorted(shards[start:], first + shards_per_part))  # shards ascend
                    columns = {c: batch[c][start:stop] for c in REF_COLUMNS}
                    table = pa.table(
                        {"position": positions[start:stop], "shard_index": shards[start:stop],
                         "instant": instants[start:stop], **columns}
                    )  # fmt: skip
                    writer.write_table(table.select(PLAN_SCHEMA.names).cast(PLAN_SCHEMA))
                    last = int(shards[stop - 1])
                    parts[-1] = PlanPart(parts[-1].file, first, last - first + 1, parts[-1].frames + stop - start)
                    num_shards = last + 1
                    start = stop
                position += n
                bar.update(n)
            if writer is not None:
                writer, closing = None, writer
                closing.close()
            if position == 0:
                raise SourceError(source_name, "the source lists no frames")
            duplicate = _duplicate_message(temporary, np.concatenate(hashes))
            if duplicate:
                raise SourceError(source_name, duplicate)
            offsets = None if shard_sizes is None else tuple(np.concatenate([[0], np.cumsum(shard_sizes)]).tolist())
            plan = Plan(
                final, shard_size, position, num_shards, tuple(parts), fingerprint, offsets, instant_tolerance_s
            )
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
        "instant_tolerance_s": plan.instant_tolerance_s,
        "shard_offsets": None if plan.shard_offsets is None else list(plan.shard_offsets),
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
        if data.get("format") != PLAN_FORMAT or data.get("version") not in READABLE_PLAN_VERSIONS:
            raise ValueError(f"not a version-{PLAN_VERSION} plan (format={data.get('format')!r})")
        parts = tuple(PlanPart(**p) for p in data["parts"])
        offsets = data.get("shard_offsets")  # version 2 plans: full shards, no instants
        return Plan(
            folder, data["shard_size"], data["num_frames"], data["num_shards"], parts, data["fingerprint"],
            None if offsets is None else tuple(offsets), data.get("instant_tolerance_s"),
        )  # fmt: skip
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
        return self.plan.frames_in(self.shards)

    def iter_batches(self, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
        """Source batches of `batch_size` rows (numpy columns, strings as object arrays), read as a stream."""
        for batch in self.plan.iter_batches(shards=self.shards, batch_size=batch_size):
            batch = with_instants(batch)
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


def with_instants(rows):
    """A version-2 plan's rows (no instant column) with instant -1, so that every plan yields the same columns."""
    if "instant" in rows.schema.names:
        return rows
    return rows.append_column("instant", pa.array(np.full(rows.num_rows, -1, np.int64)))


def pending_rows(part_file: str, shards: np.ndarray) -> pa.Table:
    """The rows of the pending `shards` in the plan part `part_file`."""
    return with_instants(_rows_of(pq.read_table(part_file), shards))


def pending_frames(run_dir: str | Path, plan: Plan) -> PendingFrames:
    """The planned shards without a manifest entry."""
    done = committed_shards(run_dir)
    everything = np.arange(plan.num_shards, dtype=np.int64)
    return PendingFrames(plan, everything[~np.isin(everything, done)])
