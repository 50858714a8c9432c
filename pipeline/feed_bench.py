"""`labels bench-feed`: how fast the labels feed a student, against the limit of decoding the images.

Three loaders, side by side in one run, each a torch DataLoader with the same workers over the same run:

- `limit`: decode and resize only, in a random order of the same training items (no labels read): what
  the images alone cost, the most any label reader can reach;
- `stream`: `PoseLabelStream` (shards dealt to workers, read whole, mixed in its buffer);
- `map`: `PoseLabelDataset` through a shuffling sampler (one frame's rows read per item).

For each: items/s after the first batch and its ratio to the limit, the time to the first batch, the
summed proportional set size (PSS) of the workers at its peak, and the bytes the workers read per item
(`rchar` from /proc: every read, page cache included). Then the shuffle's quality: how often two
consecutive items of one worker come from the same shard, against a full random permutation of the
same items. The ratios are the figures to read: absolute rates move with the machine's load.
"""

from __future__ import annotations

import os
import tempfile
import threading
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

        path = self.paths[i].decode()
        if self.modality == "color":
            image = cv2.cvtColor(decode_color(path, path), cv2.COLOR_BGR2RGB).astype(np.float32)
        else:
            image = decode_depth(path, path).astype(np.float32)
        h, w = image.shape[:2]
        size = scaled_size(w, h, item_factor(self.factor, self.seed, 0, int(self.positions[i])))
        if size != (w, h):
            image = cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_LINEAR)
        image = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
        return torch.from_numpy(np.ascontiguousarray(image))


@dataclass
class FeedFigures:
    name: str
    items: int
    first_batch_s: float
    items_per_s: float
    workers_pss_mb: float
    read_bytes_per_item: float


class _WorkerWatch:
    """Samples the DataLoader workers (children of this process): peak summed PSS, their bytes read."""

    def __init__(self, period: float = 2.0):
        import psutil

        self.me, self.period = psutil.Process(), period
        self.peak_pss, self.rchar = 0, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        total = 0
        for child in self.me.children(recursive=True):
            try:
                total += child.memory_full_info().pss
                with open(f"/proc/{child.pid}/io") as handle:
                    self.rchar[child.pid] = int(next(line for line in handle if line.startswith("rchar")).split()[1])
            except (OSError, StopIteration, ValueError, AttributeError):
                continue  # a worker that just exited
        self.peak_pss = max(self.peak_pss, total)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self._sample()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._sample()
        self._stop.set()
        self._thread.join()


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


def _measure(name: str, loader: DataLoader, items: int) -> FeedFigures:
    started = time.perf_counter()
    first = None
    count = 0
    with _WorkerWatch() as watch:
        iterator = iter(loader)
        for batch in iterator:
            count += _size(batch)
            if first is None:
                first, first_count = time.perf_counter(), count
            if count >= items:
                break
        watch._sample()  # before the workers are shut down
        del iterator
    end = time.perf_counter()
    return FeedFigures(
        name,
        count,
        (first or end) - started,
        (count - first_count) / max(end - first, 1e-9) if first else 0.0,
        watch.peak_pss / 2**20,
        sum(watch.rchar.values()) / max(count, 1),
    )


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
    if name == "limit":
        dataset = DecodeOnly(
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
    raise ValueError(f"unknown loader {name!r} (known: limit, stream, map)")


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
    loaders: tuple[str, ...] = ("limit", "stream", "map"),
    batch_size: int | None = None,
    repeats: int = 1,
) -> list[str]:
    """The figures as printable lines (see the module docstring). `repeats`: the loaders measured that many
    times in turn; the lines give medians, and each ratio to the limit is the median of the ratios within
    a turn."""
    from orpose.label_store.replicate import replicate_run
    from orpose.label_store.stream import DEFAULT_BUFFER_SIZE

    lines = []
    work = Path(keep or tempfile.mkdtemp(prefix="labels-bench-feed-"))
    if replicate:
        target = work / f"replicated-{replicate}-{shard_size}"
        if not (target / "index" / "index.npz").exists():
            started = time.perf_counter()
            replicate_run(run, target, replicate, shard_size, progress=True)
            lines.append(
                f"replicated {run} to {replicate} frames in shards of {shard_size}: {target} "
                f"({time.perf_counter() - started:.0f} s)"
            )
        run = target
    buffer_size = buffer_size or DEFAULT_BUFFER_SIZE
    started = time.perf_counter()
    stream = PoseLabelStream(run, modality=modality, factor=factor, seed=seed, buffer_size=buffer_size)
    open_s = time.perf_counter() - started
    index = stream.source.index
    lines.append(
        f"bench-feed: {run}: {len(index)} frames in {len(index.shards)} shards, {len(stream)} {modality} items; "
        f"factor {factor}, {workers} workers, batches of {batch_size or 'one item (batch_size=None)'}, "
        f"{items} items per loader, stream buffer {buffer_size}; "
        f"{os.cpu_count()} CPUs; run opened in {open_s:.2f} s"
    )
    order = np.random.default_rng([seed, 7]).permutation(np.flatnonzero(stream.eligible))[: items * 2]
    turns = [  # per repeat: loader name -> its figures, the loaders one after the other
        {name: _measure(name, _loader(name, run, stream, order, workers, batch_size), items) for name in loaders}
        for _ in range(repeats)
    ]
    ratios = {  # loader -> its ratio to the limit in each turn
        name: [t[name].items_per_s / t["limit"].items_per_s for t in turns if "limit" in t and t["limit"].items_per_s]
        for name in loaders
    }
    lines.append("loader  | items/s (after the first) | of the limit | first batch | workers' PSS | read per item")
    for name in loaders:
        f = turns[0][name]
        rate, first = (
            float(np.median([t[name].items_per_s for t in turns])),
            float(np.median([t[name].first_batch_s for t in turns])),
        )
        ratio = f"{np.median(ratios[name]):.2f}" if ratios[name] else "-"
        lines.append(
            f"{name:7} | {rate:8.1f} ({f.items} items)        | {ratio:>12} | {first:9.2f} s "
            f"| {max(t[name].workers_pss_mb for t in turns):9.0f} MB | {f.read_bytes_per_item / 1024:8.1f} KB"
        )
    if repeats > 1:
        for name in loaders:
            if name != "limit" and ratios[name]:
                each = ", ".join(f"{r:.2f}" for r in ratios[name])
                lines.append(f"  {name} of the limit, turn by turn: {each} (median above)")
    same, random_same = shuffle_quality(stream, workers)
    lines.append(
        f"shuffle : consecutive items of one worker from the same shard: stream {same:.3f} (buffer {buffer_size}), "
        f"a full random permutation {random_same:.3f}"
    )
    return lines
