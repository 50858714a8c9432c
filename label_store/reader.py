"""Reading a run (or one shard): lookup by frame id, iteration, provenance.

Only shards listed in the run's manifest are read: a file in `shards/` without a manifest entry
is not part of the run. A path to a single `.h5` shard opens just that shard.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from orpose.label_store.schema import FRAME_FIELDS, PERSON_FIELDS, STATUS_LABELLED
from orpose.label_store.shard import manifest_entries, read_dataset

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
        frames = {f.name: read_dataset(handle["frames"][f.name]) for f in FRAME_FIELDS}
        persons = {f.name: read_dataset(handle["persons"][f.name]) for f in PERSON_FIELDS}
        offsets = read_dataset(handle["frames/person_offset"])
        provenance = dict(handle["provenance"].attrs)
    return frames, persons, offsets, provenance


class LabelRun:
    """A run directory (its manifest's shards) or a single shard file."""

    def __init__(self, path: str | Path, cache_shards: int = 4):
        self.path = Path(path)
        if self.path.is_file():
            self.shard_files = [self.path]
        elif (self.path / "manifest").is_dir():
            self.shard_files = [self.path / e.file for e in manifest_entries(self.path)]
        else:
            raise FileNotFoundError(f"{self.path}: neither a shard file nor a run directory with a manifest/")
        self._index: dict[str, tuple[int, int]] = {}
        self._order: list[str] = []
        for s, shard in enumerate(self.shard_files):
            with h5py.File(shard, "r") as handle:
                for row, frame_id in enumerate(read_dataset(handle["frames/frame_id"])):
                    if frame_id in self._index:
                        raise ValueError(
                            f"{shard}: frame {frame_id!r} is also in {self.shard_files[self._index[frame_id][0]]}"
                        )
                    self._index[frame_id] = (s, row)
                    self._order.append(frame_id)
        self._load = lru_cache(maxsize=cache_shards)(lambda s: _load_shard(str(self.shard_files[s])))

    def __len__(self) -> int:
        return len(self._order)

    def frame_ids(self) -> list[str]:
        return list(self._order)

    def __contains__(self, frame_id: str) -> bool:
        return frame_id in self._index

    def get(self, frame_id: str) -> FrameLabels:
        if frame_id not in self._index:
            raise KeyError(f"frame {frame_id!r} is not in {self.path}")
        shard, row = self._index[frame_id]
        frames, persons, offsets, _ = self._load(shard)
        lo, hi = offsets[row], offsets[row + 1]
        return FrameLabels({k: v[row] for k, v in frames.items()}, {k: v[lo:hi] for k, v in persons.items()})

    def __iter__(self) -> Iterator[FrameLabels]:
        for frame_id in self._order:
            yield self.get(frame_id)

    def shards(self) -> Iterator[ShardLabels]:
        """Every shard in manifest order, one at a time (memory: one shard, whatever the run's size)."""
        for path in self.shard_files:
            frames, persons, offsets, provenance = _load_shard(str(path))
            yield ShardLabels(path, frames, persons, offsets, _decode_provenance(provenance))

    def provenance(self, shard: int = 0) -> dict:
        """The provenance attributes of a shard, JSON fields decoded."""
        return _decode_provenance(self._load(shard)[3])


def _decode_provenance(raw: dict) -> dict:
    return {k: (json.loads(v) if k.endswith("_json") else v) for k, v in raw.items()}
