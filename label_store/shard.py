"""Writing, verifying and committing HDF5 shards.

Commit protocol (a killed writer leaves no visible partial shard; Ray may run a batch twice):
1. write the shard under a temporary name in `shards/`, close it;
2. reopen it and verify schema, counts and per-dataset checksums;
3. `os.link` it to its final name: atomic, and it fails if the name exists, so two attempts at
   the same shard can never both commit, and a committed shard is never replaced;
4. write the manifest entry `manifest/shard-NNNNN.json` the same way (temp file, then link).
The manifest entry is the commit point: readers trust only shards that have one. A final file
without an entry (a writer killed between steps 3 and 4) is adopted if it verifies and holds
the planned frames, else replaced.
"""

from __future__ import annotations

import hashlib
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
from orpose.frames.files import sha256_file
from orpose.label_store.schema import (
    FRAME_FIELDS,
    PERSON_FIELDS,
    PROVENANCE_KEYS,
    SHARD_FORMAT,
    SHARD_VERSION,
    STR,
    Field,
)
from orpose.label_store.space import disk_full_as_error

__all__ = [
    "FrameRecord",
    "write_shard",
    "verify_shard",
    "commit_shard",
    "shard_name",
    "manifest_entries",
    "committed_shards",
    "ShardEntry",
    "read_manifest_entry",
    "read_dataset",
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


def write_shard(
    path: str | Path, records: Sequence[FrameRecord], provenance: Mapping[str, str], shard_index: int
) -> None:
    """Write a whole shard in one go: every dataset as one array (one h5py call each)."""
    missing = [k for k in PROVENANCE_KEYS if k not in provenance]
    if missing:
        raise ValueError(f"provenance lacks {missing}")
    person_counts = [r.num_persons for r in records]
    offsets = np.concatenate([[0], np.cumsum(person_counts)]).astype(np.int64)
    with h5py.File(path, "w") as handle:
        handle.attrs.update(
            format=SHARD_FORMAT,
            version=SHARD_VERSION,
            shard_index=shard_index,
            num_frames=len(records),
            num_persons=int(offsets[-1]),
        )
        frames = handle.create_group("frames")
        for f in FRAME_FIELDS:
            _write(frames, f.name, _column(f, [r.frame[f.name] for r in records]))
        _write(frames, "person_offset", offsets)
        persons = handle.create_group("persons")
        frame_index = np.repeat(np.arange(len(records), dtype=np.int32), person_counts)
        for f in PERSON_FIELDS:
            if f.name == "frame_index":
                column = frame_index
            else:
                parts = [_column(f, r.persons[f.name]) for r in records if r.num_persons]
                column = np.concatenate(parts) if parts else _empty(f, 0)
            _write(persons, f.name, column)
        prov = handle.create_group("provenance")
        prov.attrs.update({k: str(provenance[k]) for k in PROVENANCE_KEYS})


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


def verify_shard(path: str | Path) -> list[str]:
    """Every problem of a shard file, as readable lines; [] when it is sound."""
    problems: list[str] = []
    try:
        handle = h5py.File(path, "r")
    except (OSError, ValueError) as error:
        return [f"{path}: cannot be opened as HDF5 ({error})"]
    with handle:
        try:
            attrs = handle.attrs
            if attrs.get("format") != SHARD_FORMAT or attrs.get("version") != SHARD_VERSION:
                return [
                    f"{path}: not a version-{SHARD_VERSION} shard (format={attrs.get('format')!r}, "
                    f"version={attrs.get('version')!r})"
                ]
            num_frames, num_persons = int(attrs["num_frames"]), int(attrs["num_persons"])
            for group_name, fields, rows in (
                ("frames", FRAME_FIELDS, num_frames),
                ("persons", PERSON_FIELDS, num_persons),
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


def _frame_ids(path: Path) -> list[str]:
    with h5py.File(path, "r") as handle:
        return list(read_dataset(handle["frames/frame_id"]))


def _link_exclusive(temporary: Path, final: Path) -> bool:
    """Give `temporary` the name `final` unless that exists; True if this call did it."""
    try:
        os.link(temporary, final)
        return True
    except FileExistsError:
        return False
    finally:
        temporary.unlink(missing_ok=True)


def read_manifest_entry(path: Path) -> ShardEntry:
    data = json.loads(path.read_text())
    return ShardEntry(
        data["index"],
        data["file"],
        tuple(data["frame_ids"]),
        data["num_persons"],
        data["sha256"],
        data.get("rejected", {}),
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


def commit_shard(
    run_dir: str | Path, shard_index: int, records: Sequence[FrameRecord], provenance: Mapping[str, str]
) -> ShardEntry:
    """Write, verify and commit one shard (see the module docstring). Idempotent: committing a
    shard that is already committed returns the existing entry and writes nothing."""
    run_dir = Path(run_dir)
    name = shard_name(shard_index)
    shards, manifest = run_dir / "shards", run_dir / "manifest"
    shards.mkdir(parents=True, exist_ok=True)
    manifest.mkdir(parents=True, exist_ok=True)
    entry_path = manifest / f"{name}.json"
    if entry_path.exists():
        return read_manifest_entry(entry_path)

    final = shard_path(run_dir, shard_index)
    frame_ids = [r.frame["frame_id"] for r in records]
    if final.exists():  # a writer died between linking the shard and writing its entry
        if verify_shard(final) or _frame_ids(final) != frame_ids:
            final.unlink()
    if not final.exists():
        temporary = shards / f".{name}.{os.getpid()}.{uuid.uuid4().hex}.h5.tmp"
        try:
            with disk_full_as_error(final, "shard"):
                write_shard(temporary, records, provenance, shard_index)
                problems = verify_shard(temporary)
                if problems:
                    raise RuntimeError("shard failed verification after writing: " + "; ".join(problems))
                with open(temporary, "rb") as handle:
                    os.fsync(handle.fileno())  # on disk before it gets its visible name
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        _link_exclusive(temporary, final)

    # the run index's part for this shard, in place before the entry makes it count (index.py builds on this
    # module, so it is imported here)
    from orpose.label_store.index import index_part, write_index_part

    with disk_full_as_error(run_dir / "index", "run index"):
        write_index_part(
            run_dir, shard_index, index_part(shard_index, [r.frame for r in records], [r.num_persons for r in records])
        )
    entry = {
        "index": shard_index,
        "file": f"shards/{name}.h5",
        "frame_ids": frame_ids,
        "num_persons": int(sum(r.num_persons for r in records)),
        "sha256": sha256_file(final),
        "rejected": {r.frame["frame_id"]: r.frame["reject_reason"] for r in records if r.frame["reject_reason"]},
        "committed": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    temporary_entry = manifest / f".{name}.{os.getpid()}.{uuid.uuid4().hex}.json.tmp"
    try:
        with disk_full_as_error(entry_path, "manifest entry"):
            temporary_entry.write_text(json.dumps(entry, indent=1) + "\n")
            with open(temporary_entry, "rb") as handle:
                os.fsync(handle.fileno())
    except BaseException:
        temporary_entry.unlink(missing_ok=True)
        raise
    _link_exclusive(temporary_entry, entry_path)
    return read_manifest_entry(entry_path)
