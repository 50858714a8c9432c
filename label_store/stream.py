"""`PoseLabelStream`: a run's training items as a torch IterableDataset, at the speed of decoding.

A shuffled map-style read of a run jumps from shard to shard for every item; this stream reads shards
whole, in a shuffled order, and mixes their items in a buffer (the scheme of WebDataset and MosaicML
Streaming, applied to HDF5 shards):

1. Each epoch, the shards that hold training items are permuted with (seed, epoch).
2. They are dealt to the ranks of a distributed job (`rank` / `world_size`, or `torch.distributed` when it
   is initialised: shard k of the permutation goes to rank k mod world_size), then to the DataLoader
   workers of each rank the same way.
3. A worker reads the item's columns of one shard in one pass per column (`RunSource.read_shard`) and
   puts the shard's items, as labels and file paths, into a buffer of `buffer_size` items; once the
   buffer is full, each new item sends a random one out. The image is decoded only then, as the item
   leaves the buffer, so the buffer holds labels, not pixels.

Every training item of the run comes exactly once per epoch over all ranks and workers. The shards are
dealt, not the items, so ranks get unequal item counts when the shards hold unequal numbers of training
items (rejected frames, a short last shard, color-only frames in a depth stream) or when the shard count
is not a multiple of ranks x workers: a DDP job that needs equal steps per rank should stop each epoch at
`min_items_per_rank()` or use a join context (`torch.distributed.algorithms.Join`).

The items equal `PoseLabelDataset`'s for the same frame, factor, seed and epoch (`make_item`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from orpose.label_store.dataset import ItemReader, ItemSpec
from orpose.label_store.reader import LabelRun

__all__ = ["PoseLabelStream", "DEFAULT_BUFFER_SIZE", "deal_shards"]

# Items held for shuffling, per worker. Labels and paths only (~2 KB an item), so memory stays small; the
# trade-off, measured by `labels bench-feed` (shuffle quality) and written in docs/reading_labels.md:
# a larger buffer mixes more shards, and fills longer before the first item.
DEFAULT_BUFFER_SIZE = 2048


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) of an initialised torch.distributed job, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def deal_shards(
    shards: np.ndarray, seed: int, epoch: int, rank: int, world_size: int, worker: int, workers: int, shuffle: bool
) -> np.ndarray:
    """The shards one worker of one rank reads this epoch, in its reading order (a pure function: known
    answers in tests/label_store/test_stream.py)."""
    order = np.random.default_rng([seed, epoch]).permutation(shards) if shuffle else np.asarray(shards)
    return order[rank::world_size][worker::workers]


class PoseLabelStream(ItemReader, IterableDataset):
    """Items as `PoseLabelDataset` makes them (same arguments), streamed shard by shard; see the module
    docstring. `shuffle=False` keeps run order (each worker's shards in turn). Call `set_epoch(epoch)`
    before each epoch; `rank` / `world_size` override torch.distributed's."""

    def __init__(
        self,
        run: LabelRun | str | Path,
        modality: str = "color",
        factor: float | str = 1.0,
        seed: int = 0,
        depth_range_mm: tuple[float, float] | None = (0.0, 6000.0),
        image_dtype: str = "float32",
        depth_norm: str | Callable = "0_255",
        label_set: str = "soft",
        min_score: float | None = None,
        transform: Callable[[dict], dict] | None = None,
        keep_full: bool = False,
        upsample: bool = False,
        shuffle: bool = True,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        rank: int | None = None,
        world_size: int | None = None,
    ):
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1, got {buffer_size}")
        if (rank is None) != (world_size is None) or (
            rank is not None and world_size is not None and not 0 <= rank < world_size
        ):
            raise ValueError(f"give rank and world_size together, 0 <= rank < world_size (got {rank}, {world_size})")
        spec = ItemSpec(modality, depth_range_mm, depth_norm, image_dtype, label_set, min_score, keep_full, upsample)
        self._open(run, modality, factor, seed, spec, transform)
        self.shuffle, self.buffer_size = shuffle, buffer_size
        self.rank, self.world_size = rank, world_size
        index = self.source.index
        self.items_per_shard = np.bincount(index.shard[self.eligible], minlength=int(index.shards.max(initial=-1)) + 1)
        self.shards = np.flatnonzero(self.items_per_shard)  # shards with at least one training item

    def __len__(self) -> int:
        """Training items over all ranks and workers, per epoch."""
        return int(self.eligible.sum())

    def _rank(self) -> tuple[int, int]:
        if self.rank is not None and self.world_size is not None:
            return self.rank, self.world_size
        return distributed_rank()

    def min_items_per_rank(self, workers: int = 1) -> int:
        """The fewest items a rank gets in this epoch (to stop every rank after as many steps)."""
        rank_count = self._rank()[1]
        return min(
            int(
                sum(
                    self.items_per_shard[s]
                    for w in range(workers)
                    for s in self.worker_shards(r, rank_count, w, workers)
                )
            )
            for r in range(rank_count)
        )

    def worker_shards(self, rank: int, world_size: int, worker: int, workers: int) -> np.ndarray:
        return deal_shards(self.shards, self.seed, self.epoch, rank, world_size, worker, workers, self.shuffle)

    def __iter__(self) -> Iterator[dict]:
        rank, world_size = self._rank()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        pending = (
            item for shard in self.worker_shards(rank, world_size, worker, workers) for item in self._shard_items(shard)
        )
        for item in self._buffered(pending, rank, worker):
            yield self._item(item)  # decoded only now, as it leaves the buffer

    def epoch_positions(self, rank: int = 0, world_size: int = 1, worker: int = 0, workers: int = 1) -> np.ndarray:
        """The run-index positions one worker yields this epoch, in order, without reading a shard or an image
        (for measuring the shuffle; the same order as iterating)."""

        def positions() -> Iterator[int]:
            for shard in self.worker_shards(rank, world_size, worker, workers):
                yield from self._shard_positions(int(shard))

        return np.fromiter(self._buffered(positions(), rank, worker), dtype=np.int64)

    def _buffered(self, items: Iterator, rank: int, worker: int) -> Iterator:
        """The buffer shuffle: once `buffer_size` items wait, each new one sends a random one out."""
        if not self.shuffle:
            yield from items
            return
        rng = np.random.default_rng([self.seed, self.epoch, rank, worker, 1])
        buffer: list = []
        for item in items:
            if len(buffer) < self.buffer_size:
                buffer.append(item)
                continue
            pick = int(rng.integers(len(buffer)))
            buffer[pick], item = item, buffer[pick]
            yield item
        while buffer:  # the end of the epoch: what is left, in random order
            pick = int(rng.integers(len(buffer)))
            buffer[pick], buffer[-1] = buffer[-1], buffer[pick]
            yield buffer.pop()

    def _shard_positions(self, shard: int) -> np.ndarray:
        index = self.source.index
        # the index lists shards in ascending order: a shard's rows are one contiguous range of it
        lo, hi = np.searchsorted(index.shard, [shard, shard + 1])
        return lo + np.flatnonzero(self.eligible[lo:hi])

    def _shard_items(self, shard: int) -> Iterator[tuple]:
        """(position, frame row, persons rows) of the shard's training items, from one read of each column."""
        index = self.source.index
        positions = self._shard_positions(int(shard))
        frames, persons, offsets = self.source.read_shard(int(shard), self.modality)
        for position in positions:
            row = int(index.row[position])
            lo, hi = int(offsets[row]), int(offsets[row + 1])
            yield (
                int(position),
                {name: column[row] for name, column in frames.items()},
                {name: column[lo:hi] for name, column in persons.items()},
            )

    def _item(self, pending: tuple) -> dict:
        return self._make(*pending)
