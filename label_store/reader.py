"""Reading a run (or one shard): lookup by frame id, iteration, provenance.

Only shards listed in the run's manifest are read: a file in `shards/` without a manifest entry
is not part of the run. A path to a single `.h5` shard opens just that shard.

A run opens through its index (`label_store.index`: `index/index.npz`, one file, or its parts): no shard is
opened until a frame of it is read, and what stays in memory per frame is the index's columns. Iteration goes
shard by shard; the first look-up by frame id sorts the ids once (an argsort over the index, no dict of ids).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import h5py
import numpy as np

from orpose.label_store.index import load_index, shard_run_index
from orpose.label_store.schema import FRAME_FIELDS, PERSON_FIELDS, STATUS_LABELLED
from orpose.label_store.shard import read_dataset, read_field, shard_path

__all__ = ["LabelRun", "FrameLabels", "ShardLabels"]


@dataclass
class FrameLabels:
    """One frame's row of the frames table and its persons' rows (arrays with P rows)."""

    frame: dict
    persons: dict

    @property
    def frame_id(self) -> str:
        return self.frame["frame_id"]

    @property
    def labelled(self) -> bool:
        return int(self.frame["status"]) == STATUS_LABELLED

    def __len__(self) -> int:
        return len(self.persons["box"])


@dataclass
class ShardLabels:
    """One whole shard as columns: `frames[field]` has F rows, `persons[field]` P rows, frame i owns
    person rows `person_offset[i]:person_offset[i + 1]`. For statistics over a run one shard at a time."""

    path: Path
    frames: dict
    persons: dict
    person_offset: np.ndarray
    provenance: dict


def _load_shard(path: str) -> tuple[dict, dict, np.ndarray, dict]:
    with h5py.File(path, "r") as handle:
        offsets = read_dataset(handle["frames/person_offset"])
        rows = {"frames": len(offsets) - 1, "persons": int(offsets[-1])}
        frames, persons = (
            {f.name: read_field(handle[group], f, rows[group]) for f in fields}
            for group, fields in (("frames", FRAME_FIELDS), ("persons", PERSON_FIELDS))
        )
        provenance = dict(handle["provenance"].attrs)
    return frames, persons, offsets, provenance


class LabelRun:
    """A run directory (its committed shards, through the run index) or a single shard file."""

    def __init__(self, path: str | Path, cache_shards: int = 4):
        self.path = Path(path)
        if self.path.is_file():
            self.index = shard_run_index(self.path)
            self.shard_files = [self.path]
        elif (self.path / "manifest").is_dir():
            self.index = load_index(self.path)
            self.shard_files = [shard_path(self.path, int(s)) for s in self.index.shards]
        else:
            raise FileNotFoundError(f"{self.path}: neither a shard file nor a run directory with a manifest/")
        # the index names shards by their index in the run; shard_files is in that order
        self._file_of_shard = np.full(int(self.index.shards.max(initial=-1)) + 1, -1, dtype=np.int64)
        self._file_of_shard[self.index.shards] = np.arange(len(self.index.shards))
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None  # (argsort of the ids, the ids sorted)
        self._load = lru_cache(maxsize=cache_shards)(lambda s: _load_shard(str(self.shard_files[s])))

    def __len__(self) -> int:
        return len(self.index)

    def frame_ids(self) -> list[str]:
        return [frame_id.decode() for frame_id in self.index.frame_id]

    def _lookup(self) -> tuple[np.ndarray, np.ndarray]:
        if self._sorted is None:
            order = np.argsort(self.index.frame_id, kind="stable")
            ids = self.index.frame_id[order]
            twice = np.flatnonzero(ids[1:] == ids[:-1])
            if len(twice):
                first, second = order[twice[0]], order[twice[0] + 1]
                raise ValueError(
                    f"{self._file_at(second)}: frame {self.index.frame_id_at(second)!r} is also in "
                    f"{self._file_at(first)}"
                )
            self._sorted = (order, ids)
        return self._sorted

    def _shard_at(self, position: int) -> int:
        """The position in `shard_files` of the shard that holds the frame at `position` in the index."""
        return int(self._file_of_shard[self.index.shard[position]])

    def _file_at(self, position: int) -> Path:
        return self.shard_files[self._shard_at(position)]

    def _position(self, frame_id: str) -> int | None:
        order, ids = self._lookup()
        key = frame_id.encode()
        if not len(ids) or len(key) > ids.dtype.itemsize:  # longer than every stored id: not one of them
            return None
        at = int(np.searchsorted(ids, key))
        return int(order[at]) if at < len(ids) and ids[at] == key else None

    def __contains__(self, frame_id: str) -> bool:
        return self._position(frame_id) is not None

    def get(self, frame_id: str) -> FrameLabels:
        position = self._position(frame_id)
        if position is None:
            raise KeyError(f"frame {frame_id!r} is not in {self.path}")
        return self.frame_at(position)

    def select(self, frame_ids: Iterable[str]) -> Iterator[FrameLabels]:
        """The frames of `frame_ids` that the run holds, in the run's order, each shard read once (ids it does not
        hold are left out): a ground truth's few thousand frames out of millions without reading the rest."""
        positions = sorted(p for p in (self._position(f) for f in frame_ids) if p is not None)
        for position in positions:
            yield self.frame_at(position)

    def frame_at(self, position: int) -> FrameLabels:
        """The frame at `position` of the run index (its row in `index`), read from its shard."""
        shard, row = self._shard_at(position), int(self.index.row[position])
        frames, persons, offsets, _ = self._load(shard)
        lo, hi = offsets[row], offsets[row + 1]
        return FrameLabels({k: v[row] for k, v in frames.items()}, {k: v[lo:hi] for k, v in persons.items()})

    def __iter__(self) -> Iterator[FrameLabels]:
        """Every frame, shard by shard in the run's order (memory: one shard, whatever the run's size)."""
        for shard in self.shards():
            frames, persons, offsets = shard.frames, shard.persons, shard.person_offset
            for row in range(len(offsets) - 1):
                lo, hi = offsets[row], offsets[row + 1]
                yield FrameLabels({k: v[row] for k, v in frames.items()}, {k: v[lo:hi] for k, v in persons.items()})

    def shards(self, positions: Sequence[int] | None = None) -> Iterator[ShardLabels]:
        """Every shard in the run's order (or those at `positions` of `shard_files`), one at a time (memory: one
        shard, whatever the run's size)."""
        for path in self.shard_files if positions is None else [self.shard_files[int(i)] for i in positions]:
            frames, persons, offsets, provenance = _load_shard(str(path))
            yield ShardLabels(path, frames, persons, offsets, _decode_provenance(provenance))

    def provenance(self, shard: int = 0) -> dict:
        """The provenance attributes of a shard, JSON fields decoded."""
        return _decode_provenance(self._load(shard)[3])


def _decode_provenance(raw: dict) -> dict:
    return {k: (json.loads(v) if k.endswith("_json") else v) for k, v in raw.items()}
