"""Writing, verifying and committing HDF5 shards.

Commit protocol (nothing lost and nothing stale at any fault: a killed writer, a full disk, a power cut; Ray may
run a batch twice). Every file goes through `frames.durable.write_durable` (temporary file, space reserved, every
byte written, fsync, read back and compared, linked, directory fsynced):
1. build the shard in memory (h5py's core driver without a backing store: HDF5 touches no disk, so a full disk
   can never fail inside HDF5, where h5py cannot recover) and verify the image: schema, counts, checksums;
2. write its bytes durably and link them to `shards/shard-NNNNN.h5`: exclusive, so two attempts at the same
   shard can never both commit and a committed shard is never replaced;
3. drop the consolidated run index (it no longer covers the run) and write the shard's index part durably;
4. write the manifest entry `manifest/shard-NNNNN.json` durably (exclusive link): **the commit point**. It records
   the shard file's size and sha256.
Readers trust only shards that have an entry. At resume (`check_commits`) an entry that does not parse or whose
shard file is missing or has another size than recorded (a torn write the file system did not report, bytes
lost at a power cut) is uncommitted and its shard labelled again; leftover temporary files are removed. A final
shard file without an entry (a writer killed between steps 2 and 4) is adopted if it verifies and holds the
planned frames, its index part and entry then built from the file itself, else replaced.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import h5py
import numpy as np

from orpose.errors import OrPoseError
from orpose.frames import durable
from orpose.frames.files import sha256_file
from orpose.label_store.schema import (
    FRAME_FIELDS,
    PERSON_FIELDS,
    PROVENANCE_KEYS,
    READABLE_VERSIONS,
    SHARD_FORMAT,
    SHARD_VERSION,
    STR,
    Field,
    fields_of,
    filled,
)
from orpose.label_store.space import disk_full_as_error

__all__ = [
    "FrameRecord",
    "verify_shard",
    "shard_image",
    "commit_shard",
    "check_commits",
    "uncommit_shard",
    "uncommit_rejected",
    "shard_name",
    "manifest_entries",
    "committed_shards",
    "ShardEntry",
    "read_manifest_entry",
    "read_dataset",
    "read_field",
    "ShardReadError",
]

_STR_DTYPE = h5py.string_dtype("utf-8")
_CHUNK_ROWS = 256


@dataclass
class FrameRecord:
    """One frame's row and its persons' rows, ready to write."""

    frame: dict[str, Any]  # FRAME_FIELDS values (frame_index is added by the writer)
    persons: dict[str, np.ndarray] = field(default_factory=dict)  # PERSON_FIELDS arrays with P rows (no frame_index)

    @property
    def num_persons(self) -> int:
        return len(self.persons["box"]) if self.persons else 0


@dataclass(frozen=True)
class ShardEntry:
    index: int
    file: str  # relative to the run directory
    frame_ids: tuple[str, ...]
    num_persons: int
    sha256: str
    rejected: dict  # frame id -> reason
    size: int | None = None  # bytes of the shard file (entries written before it was recorded: None)


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def shard_path(run_dir: str | Path, index: int) -> Path:
    """A run's shard file: RUN/shards/<shard_name(index)>.h5."""
    return Path(run_dir) / "shards" / f"{shard_name(index)}.h5"


_ENTRY_NAME = re.compile(r"^shard-(\d+)\.json$")  # manifest/<shard_name(index)>.json


def _empty(f: Field, rows: int) -> np.ndarray:
    if f.dtype is STR:
        return np.array([""] * rows, dtype=object)
    return np.zeros((rows, *f.shape), dtype=f.dtype)


def _column(f: Field, values: Sequence) -> np.ndarray:
    if f.dtype is STR:
        return np.array([str(v) for v in values], dtype=object)
    return np.asarray(values, dtype=f.dtype).reshape(len(values), *f.shape)


def _digest(values: np.ndarray) -> str:
    h = hashlib.sha256()
    if values.dtype == object:
        for v in values:
            h.update(v.encode("utf-8") if isinstance(v, str) else bytes(v))
            h.update(b"\0")
    else:
        h.update(np.ascontiguousarray(values).tobytes())
    return h.hexdigest()


def _write(group: h5py.Group, name: str, values: np.ndarray) -> None:
    if values.dtype == object:
        data = group.create_dataset(
            name,
            data=values.astype(_STR_DTYPE) if len(values) else np.array([], dtype=_STR_DTYPE),
            dtype=_STR_DTYPE,
            chunks=(min(max(len(values), 1), _CHUNK_ROWS),),
            compression="gzip",
            compression_opts=4,
            maxshape=(None,),  # (no fletcher32: HDF5 allows no checksum filter on variable-length strings)
        )
    else:
        chunks = (min(max(len(values), 1), _CHUNK_ROWS), *values.shape[1:])
        data = group.create_dataset(
            name,
            data=values,
            chunks=chunks,
            compression="gzip",
            compression_opts=4,
            shuffle=True,
            fletcher32=True,  # a checksum per chunk, checked by HDF5 on every read (ShardReadError)
            maxshape=(None, *values.shape[1:]),
        )
    data.attrs["sha256"] = _digest(values)


def _value(row: Mapping[str, Any], f: Field) -> Any:
    """A record's value of field `f`; a field added after version 1 that the record lacks (a frame the fusion
    stage did not see) gets its fill value."""
    return row[f.name] if f.name in row or f.since == 1 else f.fill


def _fill(handle: h5py.File, records: Sequence[FrameRecord], provenance: Mapping[str, str], shard_index: int) -> None:
    """Every dataset of a shard as one array (one h5py call each)."""
    missing = [k for k in PROVENANCE_KEYS if k not in provenance]
    if missing:
        raise ValueError(f"provenance lacks {missing}")
    person_counts = [r.num_persons for r in records]
    offsets = np.concatenate([[0], np.cumsum(person_counts)]).astype(np.int64)
    handle.attrs.update(
        format=SHARD_FORMAT,
        version=SHARD_VERSION,
        shard_index=shard_index,
        num_frames=len(records),
        num_persons=int(offsets[-1]),
    )
    frames = handle.create_group("frames")
    for f in FRAME_FIELDS:
        _write(frames, f.name, _column(f, [_value(r.frame, f) for r in records]))
    _write(frames, "person_offset", offsets)
    persons = handle.create_group("persons")
    frame_index = np.repeat(np.arange(len(records), dtype=np.int32), person_counts)
    for f in PERSON_FIELDS:
        if f.name == "frame_index":
            column = frame_index
        else:
            parts = [
                _column(f, r.persons[f.name]) if f.name in r.persons or f.since == 1 else filled(f, r.num_persons)
                for r in records
                if r.num_persons
            ]
            column = np.concatenate(parts) if parts else _empty(f, 0)
        _write(persons, f.name, column)
    prov = handle.create_group("provenance")
    prov.attrs.update({k: str(provenance[k]) for k in PROVENANCE_KEYS})


def shard_image(records: Sequence[FrameRecord], provenance: Mapping[str, str], shard_index: int) -> bytes:
    """A shard file's bytes, built in memory by HDF5's core driver with no backing store (no disk touched).
    Memory: the image once, about the size of the shard file (docs/label_format.md, "Commits")."""
    name = f"shard-{shard_index}-{uuid.uuid4().hex}.h5"  # HDF5 knows open files by name: one per image
    with h5py.File(name, "w", driver="core", backing_store=False) as handle:
        _fill(handle, records, provenance, shard_index)
        handle.flush()
        return bytes(handle.id.get_file_image())


class ShardReadError(OrPoseError, OSError):
    """A shard's dataset cannot be read back as written: its chunk checksum (fletcher32) or its compression
    fails. Names the shard and the dataset; `labels verify` lists every such problem of a run."""


def read_dataset(dataset: h5py.Dataset) -> np.ndarray:
    """A whole dataset of a shard. Shards written since the checksums came (fletcher32 on every dataset) are
    checked by HDF5 as they are read: flipped bytes raise ShardReadError instead of reaching a student. Older
    shards have no checksum and read as before (`labels verify` checks them against their sha256)."""
    try:
        if h5py.check_string_dtype(dataset.dtype) is not None:
            return dataset.asstr()[()] if dataset.shape != (0,) else np.array([], dtype=object)
        return dataset[()]
    except OSError as error:
        raise ShardReadError(
            f"{dataset.file.filename}: dataset {dataset.name} is damaged ({error}); relabel its shard "
            "(delete the shard file and its manifest entry, then run the same labels run again)"
        ) from None


def read_field(group: h5py.Group, f: Field, rows: int) -> np.ndarray:
    """A whole field of a shard's group (`read_dataset`); a field added after the shard's version (`Field.since`)
    reads as `rows` rows of its fill value."""
    return read_dataset(group[f.name]) if f.name in group else filled(f, rows)


def verify_shard(path: str | Path, image: bytes | None = None) -> list[str]:
    """Every problem of a shard file, as readable lines; [] when it is sound. `image`: the file's bytes in
    memory (a shard not yet written), `path` then only names it."""
    problems: list[str] = []
    try:
        handle = h5py.File(io.BytesIO(image) if image is not None else path, "r")
    except (OSError, ValueError) as error:
        return [f"{path}: cannot be opened as HDF5 ({error})"]
    with handle:
        try:
            attrs = handle.attrs
            if attrs.get("format") != SHARD_FORMAT or attrs.get("version") not in READABLE_VERSIONS:
                return [
                    f"{path}: not a shard of version {' or '.join(map(str, READABLE_VERSIONS))} "
                    f"(format={attrs.get('format')!r}, version={attrs.get('version')!r})"
                ]
            version = int(attrs["version"])
            num_frames, num_persons = int(attrs["num_frames"]), int(attrs["num_persons"])
            for group_name, fields, rows in (
                ("frames", fields_of(FRAME_FIELDS, version), num_frames),
                ("persons", fields_of(PERSON_FIELDS, version), num_persons),
            ):
                if group_name not in handle:
                    problems.append(f"{path}: group /{group_name} is missing")
                    continue
                group = handle[group_name]
                for f in fields:
                    if f.name not in group:
                        problems.append(f"{path}: /{group_name}/{f.name} is missing")
                        continue
                    data = group[f.name]
                    if data.shape != (rows, *f.shape):
                        problems.append(
                            f"{path}: /{group_name}/{f.name} has shape {data.shape}, expected {(rows, *f.shape)}"
                        )
                        continue
                    try:
                        values = read_dataset(data)
                    except (OSError, ValueError, RuntimeError) as error:  # a damaged compressed chunk
                        problems.append(f"{path}: /{group_name}/{f.name}: unreadable data ({error})")
                        continue
                    if _digest(values) != data.attrs.get("sha256"):
                        problems.append(
                            f"{path}: /{group_name}/{f.name}: checksum mismatch (the data changed after writing)"
                        )
            offsets = read_dataset(handle["frames/person_offset"])
            if _digest(offsets) != handle["frames/person_offset"].attrs.get("sha256"):
                problems.append(f"{path}: /frames/person_offset: checksum mismatch (the data changed after writing)")
            if (
                len(offsets) != num_frames + 1
                or offsets[0] != 0
                or offsets[-1] != num_persons
                or np.any(np.diff(offsets) < 0)
            ):
                problems.append(
                    f"{path}: /frames/person_offset does not partition {num_persons} persons over {num_frames} frames"
                )
            prov = handle["provenance"].attrs if "provenance" in handle else {}
            for key in PROVENANCE_KEYS:
                if key not in prov:
                    problems.append(f"{path}: provenance attribute {key!r} is missing")
        except (OSError, KeyError, ValueError, RuntimeError) as error:  # a damaged chunk or header
            problems.append(f"{path}: unreadable content ({type(error).__name__}: {error})")
    return problems


def _shard_summary(path: Path) -> tuple[list[str], int, dict[str, str]]:
    """(frame ids, persons, rejected frame id -> reason) of a shard file, read from the file itself."""
    with h5py.File(path, "r") as handle:
        frame_ids = list(read_dataset(handle["frames/frame_id"]))
        reasons = read_dataset(handle["frames/reject_reason"])
        num_persons = int(handle.attrs["num_persons"])
    return frame_ids, num_persons, {f: str(r) for f, r in zip(frame_ids, reasons) if r}


def read_manifest_entry(path: Path) -> ShardEntry:
    data = json.loads(path.read_text())
    return ShardEntry(
        data["index"],
        data["file"],
        tuple(data["frame_ids"]),
        data["num_persons"],
        data["sha256"],
        data.get("rejected", {}),
        data.get("size"),
    )


def committed_shards(run_dir: str | Path) -> np.ndarray:
    """Indices of the committed shards, sorted, from the manifest's file names alone (one directory listing,
    no entry read: what a resume of millions of frames needs)."""
    folder = Path(run_dir) / "manifest"
    if not folder.is_dir():
        return np.zeros(0, dtype=np.int64)
    with os.scandir(folder) as entries:
        found = [int(m.group(1)) for e in entries if (m := _ENTRY_NAME.match(e.name))]
    return np.array(sorted(found), dtype=np.int64)


def manifest_entries(run_dir: str | Path) -> list[ShardEntry]:
    """The committed shards of a run, by index: what readers trust."""
    folder = Path(run_dir) / "manifest"
    return sorted((read_manifest_entry(p) for p in folder.glob("shard-*.json")), key=lambda e: e.index)


def _adoptable(final: Path, frame_ids: list[str]) -> bool:
    """A final shard file without its entry (a writer killed between link and entry) that verifies and holds
    the planned frames: kept, and committed from its own content."""
    return final.exists() and not verify_shard(final) and _shard_summary(final)[0] == frame_ids


def commit_shard(
    run_dir: str | Path, shard_index: int, records: Sequence[FrameRecord], provenance: Mapping[str, str]
) -> ShardEntry:
    """Write, verify and commit one shard (see the module docstring). Idempotent: committing a
    shard that is already committed returns the existing entry and writes nothing. A failed write raises
    DiskFullError or StoreWriteError naming the file."""
    with disk_full_as_error(shard_path(run_dir, shard_index), "shard"):
        return _commit(Path(run_dir), shard_index, records, provenance)


def _commit(
    run_dir: Path, shard_index: int, records: Sequence[FrameRecord], provenance: Mapping[str, str]
) -> ShardEntry:
    from orpose.label_store.index import (  # (index builds on this module)
        index_part,
        invalidate_consolidated,
        shard_index_part,
        write_index_part,
    )

    name = shard_name(shard_index)
    shards, manifest = run_dir / "shards", run_dir / "manifest"
    shards.mkdir(parents=True, exist_ok=True)
    manifest.mkdir(parents=True, exist_ok=True)
    entry_path = manifest / f"{name}.json"
    if entry_path.exists():
        return read_manifest_entry(entry_path)

    final = shard_path(run_dir, shard_index)
    frame_ids = [r.frame["frame_id"] for r in records]
    adopted = _adoptable(final, frame_ids)
    if not adopted:
        if durable.remove(final):  # a leftover that is damaged or holds other frames
            durable.fsync_directory(shards)
        image = shard_image(records, provenance, shard_index)
        problems = verify_shard(final, image)
        if problems:
            raise RuntimeError("shard failed verification after building it: " + "; ".join(problems))
        with disk_full_as_error(final, "shard"):
            written = durable.write_durable(final, image, exclusive=True)
        adopted = not written.created  # another attempt at this shard linked first: its file stands
    if adopted:
        ids, num_persons, rejected = _shard_summary(final)
        size, digest = final.stat().st_size, sha256_file(final)
        part = shard_index_part(final, shard_index)
    else:
        num_persons = int(sum(r.num_persons for r in records))
        rejected = {r.frame["frame_id"]: r.frame["reject_reason"] for r in records if r.frame["reject_reason"]}
        size, digest, ids = written.size, written.sha256, frame_ids
        with_persons = [r.persons for r in records if r.num_persons]
        persons = {k: np.concatenate([p[k] for p in with_persons]) for k in ("score", "keypoints_2d", "hard_mask",
                   "hard_valid")} if with_persons else None  # fmt: skip
        part = index_part(shard_index, [r.frame for r in records], [r.num_persons for r in records], persons)

    with disk_full_as_error(run_dir / "index", "run index"):
        invalidate_consolidated(run_dir)  # it covers the run without this shard (or with an older one)
        write_index_part(run_dir, shard_index, part)
    entry = {
        "index": shard_index,
        "file": f"shards/{name}.h5",
        "frame_ids": list(ids),
        "num_persons": num_persons,
        "size": size,
        "sha256": digest,
        "rejected": rejected,
        "committed": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    with disk_full_as_error(entry_path, "manifest entry"):
        durable.write_durable(entry_path, (json.dumps(entry, indent=1) + "\n").encode(), exclusive=True)
    return read_manifest_entry(entry_path)


def uncommit_shard(run_dir: str | Path, shard_index: int) -> None:
    """Take a shard out of the run so that a resume labels it again: its entry first (the commit point), then
    its file, its index part and the consolidated index."""
    from orpose.label_store.index import invalidate_consolidated, part_path

    run_dir = Path(run_dir)
    if durable.remove(run_dir / "manifest" / f"{shard_name(shard_index)}.json"):
        durable.fsync_directory(run_dir / "manifest")
    durable.remove(shard_path(run_dir, shard_index))
    durable.remove(part_path(run_dir, shard_index))
    invalidate_consolidated(run_dir)


def _commit_problem(run_dir: Path, shard_index: int) -> str | None:
    """Why a committed shard cannot be trusted, or None."""
    entry_path = run_dir / "manifest" / f"{shard_name(shard_index)}.json"
    try:
        entry = read_manifest_entry(entry_path)
        if entry.index != shard_index:
            return f"{entry_path}: names shard {entry.index}"
        size = (run_dir / entry.file).stat().st_size
    except FileNotFoundError as error:
        return f"{error.filename}: missing"
    except (ValueError, KeyError, TypeError) as error:
        return f"{entry_path}: unreadable entry ({type(error).__name__}: {error})"
    if entry.size is not None and size != entry.size:
        return f"{run_dir / entry.file}: {size} bytes on disk, {entry.size} committed"
    return None


def check_commits(run_dir: str | Path) -> list[str]:
    """At resume: every committed shard whose entry does not parse, or whose file is missing or not the size its
    entry records, is uncommitted (`uncommit_shard`) so that the run labels it again; temporary files of killed
    writers are removed. Returns a line for each shard uncommitted. Cost: one entry read and one stat per
    committed shard (the sha256 is checked by `labels verify`, and every read checks the chunks' fletcher32)."""
    run_dir = Path(run_dir)
    problems = []
    with disk_full_as_error(run_dir / "manifest", "the run's commits"):
        for folder in ("shards", "manifest", "index", "plan"):
            durable.remove_temporaries(run_dir / folder)
        for shard_index in committed_shards(run_dir):
            problem = _commit_problem(run_dir, int(shard_index))
            if problem is not None:
                problems.append(problem)
                uncommit_shard(run_dir, int(shard_index))
    return problems


def uncommit_rejected(run_dir: str | Path, reasons: Sequence[str]) -> tuple[int, int]:
    """Uncommit every shard holding a frame rejected with one of the reason tags `reasons` (`labels run
    --retry-rejected`), so that the run labels those shards again. Returns (shards, rejected frames)."""
    run_dir, wanted = Path(run_dir), set(reasons)
    shards = frames = 0
    with disk_full_as_error(run_dir / "manifest", "the run's commits"):
        for entry in manifest_entries(run_dir):
            hits = sum(reason in wanted for reason in entry.rejected.values())
            if hits:
                uncommit_shard(run_dir, entry.index)
                shards, frames = shards + 1, frames + hits
    return shards, frames
