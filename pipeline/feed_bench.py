"""`labels bench-feed`: how fast the labels feed a student, against the limit of decoding the images.

Four loaders, side by side in one run, each a torch DataLoader with the same workers over the same run:

- `minimal`: the least a loader of these images can do, as a student's own script would write it: `cv2.imread`,
  float32, resize, one channels-first copy (the channels left in OpenCV's BGR order), in the same random order;
- `limit`: decode and resize only as `make_item` does it (the checked decode of `orpose.frames.decode`, the
  swap to RGB), in the same order, no labels read: what this project's images alone cost;
- `stream`: `PoseLabelStream` (shards dealt to workers, read whole, mixed in its buffer);
- `map`: `PoseLabelDataset` through a shuffling sampler (one frame's rows read per item).

The loaders are measured interleaved: all of them are started, and then read in turns of `segment` items
each (minimal, limit, stream, map, minimal, ...), each keeping its workers between its turns. A slow spell of a
shared machine, which lasts seconds, so falls on every loader alike, where measuring one loader after the
other moved a ratio by up to 0.4 from one repeat to the next on this project's 2-core machine. A loader
that waits for its turn has at most its prefetched batches in flight; they are made while another
loader's turn runs and read at the start of its own, so each turn gains and loses about as many items'
work, and the turns are kept long (60 batches) against that.

For each: items/s after the first batch (its items over the seconds of its turns), its ratio to the first
loader (the minimal one, else the limit) and that ratio's spread over the turns, its ratio to the limit, the time
to the first batch, the summed proportional set
size (PSS) of its workers at its peak, and the bytes its workers read per item (`rchar` from /proc: every
read, page cache included). Then the shuffle's quality: how often two consecutive items of one worker
come from the same shard, against a full random permutation of the same items. The ratios are the
figures to read: absolute rates move with the machine's load.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from orpose.frames.decode import decode_color, decode_depth
from orpose.label_store.dataset import PoseLabelDataset, RunSource, item_factor, scaled_size
from orpose.label_store.stream import PoseLabelStream

__all__ = ["bench_feed", "FeedFigures"]


class DecodeOnly(Dataset):
    """The limit: each item is only its image, decoded and resized as `make_item` does it."""

    def __init__(self, paths: np.ndarray, positions: np.ndarray, modality: str, factor, seed: int):
        self.paths, self.positions, self.modality, self.factor, self.seed = paths, positions, modality, factor, seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        import cv2

        image = self._decode(self.paths[i].decode()).astype(np.float32)
        h, w = image.shape[:2]
        size = scaled_size(w, h, item_factor(self.factor, self.seed, 0, int(self.positions[i])))
        if size != (w, h):
            image = cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_LINEAR)
        return torch.from_numpy(np.ascontiguousarray(self._channels_first(image)))

    def _decode(self, path: str) -> np.ndarray:
        # BGR: the channels swap in the last copy
        return decode_color(path, path) if self.modality == "color" else decode_depth(path, path)

    @staticmethod
    def _channels_first(image: np.ndarray) -> np.ndarray:
        return image[None] if image.ndim == 2 else image.transpose(2, 0, 1)[::-1]  # RGB, channels first


class MinimalDecode(DecodeOnly):
    """The minimal loader: `cv2.imread`, float32, resize, one channels-first copy; nothing checked, no RGB swap."""

    def _decode(self, path: str) -> np.ndarray:
        import cv2

        return cv2.imread(path, cv2.IMREAD_COLOR if self.modality == "color" else cv2.IMREAD_UNCHANGED)

    @staticmethod
    def _channels_first(image: np.ndarray) -> np.ndarray:
        return image[None] if image.ndim == 2 else image.transpose(2, 0, 1)


@dataclass
class FeedFigures:
    name: str
    items: int
    first_batch_s: float
    items_per_s: float
    workers_pss_mb: float
    read_bytes_per_item: float


class _LoaderTurns:
    """One loader, started once and read in turns: its workers are the processes that appeared when its
    iterator started (sampled after each turn: peak summed PSS, bytes read)."""

    def __init__(self, name: str, loader: DataLoader):
        import psutil

        self.name, self.me = name, psutil.Process()
        before = {child.pid for child in self.me.children(recursive=True)}
        started = time.perf_counter()
        self.iterator = iter(loader)  # starts the workers
        self.workers = [child for child in self.me.children(recursive=True) if child.pid not in before]
        self.items, self.seconds, self.rates = 0, 0.0, []
        self.peak_pss, self.rchar = 0, {}
        first = next(self.iterator, None)
        self.first_batch_s = time.perf_counter() - started
        self.first_items = _size(first) if first is not None else 0
        self.done = first is None

    def turn(self, items: int) -> None:
        """Read `items` more (or to the end of the epoch) and time them."""
        started, count = time.perf_counter(), 0
        while count < items:
            batch = next(self.iterator, None)
            if batch is None:
                self.done = True
                break
            count += _size(batch)
        seconds = time.perf_counter() - started
        if count:
            self.items, self.seconds = self.items + count, self.seconds + seconds
            self.rates.append(count / max(seconds, 1e-9))
        self._sample()

    def _sample(self) -> None:
        import psutil

        total = 0
        for worker in self.workers:
            try:
                total += worker.memory_full_info().pss
                with open(f"/proc/{worker.pid}/io") as handle:
                    self.rchar[worker.pid] = int(next(line for line in handle if line.startswith("rchar")).split()[1])
            except (psutil.Error, OSError, StopIteration, ValueError, AttributeError):
                continue  # a worker that just exited
        self.peak_pss = max(self.peak_pss, total)

    def close(self) -> FeedFigures:
        self._sample()
        del self.iterator  # shuts its workers down
        return FeedFigures(
            self.name,
            self.first_items + self.items,
            self.first_batch_s,
            self.items / max(self.seconds, 1e-9) if self.items else 0.0,
            self.peak_pss / 2**20,
            sum(self.rchar.values()) / max(self.first_items + self.items, 1),
        )


def _size(batch) -> int:
    """Items in what a DataLoader yields: one item, a list of items, or a collated batch."""
    if isinstance(batch, list):
        return len(batch)
    if isinstance(batch, dict) and "person_mask" in batch:
        return len(batch["person_mask"])
    if isinstance(batch, torch.Tensor) and batch.dim() == 4:
        return len(batch)
    return 1


def _stack_or_list(items):
    """The limit's collate: its images stacked when they share a size (a fixed factor), else a list."""
    if all(item.shape == items[0].shape for item in items):
        return torch.stack(items)
    return list(items)


def _poses_or_list(items):
    """The readers' collate: `collate_poses` when the images share a size, else the items as a list."""
    from orpose.label_store.transforms import collate_poses

    if all(item["image"].shape == items[0]["image"].shape for item in items):
        return collate_poses(items)
    return list(items)


def measure_interleaved(loaders: dict[str, DataLoader], items: int, segment: int) -> tuple[list, dict]:
    """Each loader's figures, and per loader the ratio of its rate to the first loader's in each round of
    turns (see the module docstring)."""
    runs = [_LoaderTurns(name, loader) for name, loader in loaders.items()]
    while any(not run.done and run.items < items for run in runs):
        for run in runs:
            if not run.done and run.items < items:
                run.turn(min(segment, items - run.items))
    reference = runs[0]
    ratios = {run.name: [rate / base for rate, base in zip(run.rates, reference.rates) if base > 0] for run in runs[1:]}
    return [run.close() for run in runs], ratios


def _paths(source: RunSource, positions: np.ndarray, modality: str) -> np.ndarray:
    """The image paths of the given index positions (read from the shards once, before timing)."""
    column = "color_path" if modality == "color" else "depth_path"
    out = np.empty(len(positions), dtype=object)
    order = np.argsort(positions, kind="stable")
    sorted_positions = positions[order]
    index = source.index
    for shard in np.unique(index.shard[sorted_positions]):
        lo, hi = np.searchsorted(index.shard[sorted_positions], [shard, shard + 1])
        rows = index.row[sorted_positions[lo:hi]]
        values = source.handle(int(shard))["frames"][column][...]
        out[order[lo:hi]] = [values[r] if isinstance(values[r], bytes) else values[r].encode() for r in rows]
    return out.astype(bytes)


def _batching(batch_size: int | None, collate) -> dict:
    return dict(batch_size=None) if batch_size is None else dict(batch_size=batch_size, collate_fn=collate)


def _loader(name: str, run, stream: PoseLabelStream, order: np.ndarray, workers: int, batch_size: int | None):
    """The DataLoader of loader `name` over the same items (`order`: the limit's and the map-style's order)."""
    if name in ("limit", "minimal"):
        decode = DecodeOnly if name == "limit" else MinimalDecode
        dataset = decode(
            _paths(stream.source, order, stream.modality), order, stream.modality, stream.factor, stream.seed
        )
        return DataLoader(dataset, num_workers=workers, **_batching(batch_size, _stack_or_list))
    if name == "stream":
        return DataLoader(stream, num_workers=workers, **_batching(batch_size, _poses_or_list))
    if name == "map":
        dataset = PoseLabelDataset(run, modality=stream.modality, factor=stream.factor, seed=stream.seed)
        where = {int(p): i for i, p in enumerate(dataset.positions)}
        sampler = [where[int(p)] for p in order]  # the limit's random order
        return DataLoader(dataset, num_workers=workers, sampler=sampler, **_batching(batch_size, _poses_or_list))
    raise ValueError(f"unknown loader {name!r} (known: minimal, limit, stream, map)")


def shuffle_quality(stream: PoseLabelStream, workers: int) -> tuple[float, float]:
    """(consecutive items of one worker from the same shard: the stream, a full random permutation)."""
    index = stream.source.index
    positions = stream.epoch_positions(0, 1, 0, max(workers, 1))  # --workers 0: the items are read in process
    stream_rate = float(np.mean(index.shard[positions][1:] == index.shard[positions][:-1]))
    everything = np.flatnonzero(stream.eligible)
    permuted = index.shard[np.random.default_rng(0).permutation(everything)]
    return stream_rate, float(np.mean(permuted[1:] == permuted[:-1]))


def bench_feed(
    run: str | Path,
    replicate: int | None = None,
    shard_size: int = 256,
    workers: int = 2,
    factor: float | str = 8,
    modality: str = "color",
    items: int = 2000,
    buffer_size: int | None = None,
    seed: int = 0,
    keep: str | None = None,
    loaders: tuple[str, ...] = ("minimal", "limit", "stream", "map"),
    batch_size: int | None = None,
    turn_batches: int = 60,
) -> list[str]:
    """The figures as printable lines (see the module docstring). `turn_batches`: batches a loader reads in
    one turn."""
    from orpose.label_store.stream import DEFAULT_BUFFER_SIZE

    lines = []
    run = _replicated(run, replicate, shard_size, keep, lines)
    buffer_size = buffer_size or DEFAULT_BUFFER_SIZE
    started = time.perf_counter()
    stream = PoseLabelStream(run, modality=modality, factor=factor, seed=seed, buffer_size=buffer_size)
    open_s = time.perf_counter() - started
    index = stream.source.index
    turn = turn_batches * (batch_size or 1)
    lines.append(
        f"bench-feed: {run}: {len(index)} frames in {len(index.shards)} shards, {len(stream)} {modality} items; "
        f"factor {factor}, {workers} workers, batches of {batch_size or 'one item (batch_size=None)'}, "
        f"{items} items per loader in turns of {turn}, stream buffer {buffer_size}; "
        f"{os.cpu_count()} CPUs; run opened in {open_s:.2f} s"
    )
    order = np.random.default_rng([seed, 7]).permutation(np.flatnonzero(stream.eligible))[: items * 2]
    # the references first (the others' ratios are to them): minimal, then limit
    names = sorted(loaders, key=lambda name: {"minimal": 0, "limit": 1}.get(name, 2))
    figures, ratios = measure_interleaved(
        {name: _loader(name, run, stream, order, workers, batch_size) for name in names}, items, turn
    )
    reference = {f.name: f for f in figures if f.name in ("limit", "minimal")}
    first = names[0] if names[0] in reference else None  # the turn-by-turn ratios are to the first loader
    lines.append(
        f"loader  | items/s (after the first) | of {first or '-':7} | turn by turn (q25-q75) | of the limit | "
        "first batch | workers' PSS | read per item"
    )

    def of(f: FeedFigures, name: str) -> str:
        base = reference.get(name)
        return f"{f.items_per_s / base.items_per_s:.2f}" if base and base.items_per_s else "-"

    for f in figures:
        spread = ratios.get(f.name, []) if first else []
        quartiles = f"{np.quantile(spread, 0.25):.2f}-{np.quantile(spread, 0.75):.2f}" if spread else "-"
        lines.append(
            f"{f.name:7} | {f.items_per_s:8.1f} ({f.items} items)        | {of(f, first) if first else '-':>10} "
            f"| {quartiles:>22} | {of(f, 'limit'):>12} | {f.first_batch_s:9.2f} s | {f.workers_pss_mb:9.0f} MB "
            f"| {f.read_bytes_per_item / 1024:8.1f} KB"
        )
    same, random_same = shuffle_quality(stream, workers)
    lines.append(
        f"shuffle : consecutive items of one worker from the same shard: stream {same:.3f} (buffer {buffer_size}), "
        f"a full random permutation {random_same:.3f}"
    )
    return lines


def _replicated(run, replicate: int | None, shard_size: int, keep: str | None, lines: list[str]):
    """The run, or its copy grown to `replicate` frames (made once in the work folder, reused when there)."""
    from orpose.label_store.replicate import replicate_run

    if not replicate:
        return run
    work = Path(keep or tempfile.mkdtemp(prefix="labels-bench-feed-"))
    target = work / f"replicated-{replicate}-{shard_size}"
    if not (target / "index" / "index.npz").exists():
        started = time.perf_counter()
        replicate_run(run, target, replicate, shard_size, progress=True)
        lines.append(
            f"replicated {run} to {replicate} frames in shards of {shard_size}: {target} "
            f"({time.perf_counter() - started:.0f} s)"
        )
    return target
