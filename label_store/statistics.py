"""Statistics of a run, streamed one shard at a time: fixed-bin histograms and counters whose size
does not grow with the run, so a run of millions of frames is summarised in bounded memory.

`RunStatistics.add(shard)` folds one shard in; `collect_statistics(run)` folds a whole run. What it
keeps: counts per (day, camera), rejected frames by reason (and the first `max_rejected` of them
with their details), persons per frame, histograms of the detector score, of each joint's
confidence and TTA spread and of depth consistency, the depth flags, how often each joint is in
the hard set, and the `gallery_size` least confident persons (`person_uncertainty`), which are
what a reviewer should look at first. Quantiles are read from the histograms (to a bin's width).
"""

from __future__ import annotations

import heapq
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from orpose.label_store.reader import LabelRun, ShardLabels
from orpose.label_store.schema import STATUS_LABELLED

__all__ = [
    "Histogram",
    "RunStatistics",
    "GalleryPerson",
    "collect_statistics",
    "sample_shards",
    "person_uncertainty",
    "day_of",
]

NUM_JOINTS = 17
_DAY = re.compile(r"(?:^|/)(day[^/]*)(?:/|$)", re.IGNORECASE)


def day_of(frame_id: str, color_path: str = "") -> str:
    """The recording day a frame belongs to: a `dayN` component of its frame id or color path (MVOR's
    and the generator's layout), else '' (the source does not say)."""
    match = _DAY.search(frame_id) or _DAY.search(color_path)
    return match.group(1) if match else ""


def _folders(ids: np.ndarray) -> np.ndarray:
    """The folder of each frame id (fixed-width bytes, everything before the last '/', b'' without one), as one
    array of the same width: np.char.rpartition made Python objects of every id (250 MB at a million)."""
    width = ids.dtype.itemsize
    chars = np.ascontiguousarray(ids).view(np.uint8).reshape(len(ids), width)
    slash = chars == ord("/")
    last = np.where(slash.any(axis=1), width - 1 - np.argmax(slash[:, ::-1], axis=1), 0)
    folders = np.where(np.arange(width) < last[:, None], chars, np.uint8(0)).astype(np.uint8)
    return folders.view(f"S{width}").reshape(len(ids))


def _rejected_entry(frame) -> dict:
    """What the report lists of a rejected frame, from its frame fields (a FrameLabels' `frame`, or a shard's row)."""
    return {
        "frame_id": str(frame["frame_id"]),
        "camera_id": str(frame["camera_id"]),
        "reason": str(frame["reject_reason"]),
        "detail": str(frame["reject_detail"]),
    }


def person_uncertainty(keypoints_2d: np.ndarray) -> np.ndarray:
    """How unsure the teacher is of each person (P x 17 x 3 -> P): one minus the mean keypoint
    confidence. 0 = every joint certain, 1 = no joint found."""
    return 1.0 - keypoints_2d[..., 2].astype(np.float64).mean(axis=-1)


class Histogram:
    """Counts of values in `bins` equal bins over [low, high], per channel; values below `low` count
    in the first bin, values above `high` in `above`, NaN in `missing`."""

    def __init__(self, low: float, high: float, bins: int, channels: int = 1):
        self.low, self.high, self.bins = float(low), float(high), int(bins)
        self.counts = np.zeros((channels, bins), np.int64)
        self.above = np.zeros(channels, np.int64)
        self.missing = np.zeros(channels, np.int64)

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(self.low, self.high, self.bins + 1)

    def add(self, values: np.ndarray) -> None:
        """Values shaped (N,) for one channel or (N, channels); folded in 2^18 rows at a time, so that a whole
        run's column (the index's) costs a few MB of temporaries, not ten times its size."""
        values = np.asarray(values).reshape(-1, self.counts.shape[0])
        for start in range(0, len(values), 1 << 18):
            self._add(values[start : start + (1 << 18)].astype(np.float64))

    def _add(self, values: np.ndarray) -> None:
        finite = np.isfinite(values)
        self.missing += (~finite).sum(0)
        over = finite & (values > self.high)
        self.above += over.sum(0)
        inside = finite & ~over
        scaled = (np.where(inside, values, self.low) - self.low) / (self.high - self.low) * self.bins
        index = np.clip(scaled.astype(np.int64), 0, self.bins - 1)
        channel = np.broadcast_to(np.arange(values.shape[1]), values.shape)
        flat = channel[inside] * self.bins + index[inside]
        self.counts += np.bincount(flat, minlength=self.counts.size).reshape(self.counts.shape)

    def total(self) -> np.ndarray:
        """Finite values per channel."""
        return self.counts.sum(1) + self.above

    def quantiles(self, q) -> np.ndarray:
        """Quantiles per channel (channels x len(q)), linear within a bin; NaN for an empty channel,
        `high` where the quantile falls above the range."""
        q = np.atleast_1d(np.asarray(q, np.float64))
        out = np.full((self.counts.shape[0], len(q)), np.nan)
        width = (self.high - self.low) / self.bins
        for c, counts in enumerate(self.counts):
            total = counts.sum() + self.above[c]
            if total == 0:
                continue
            cumulative = np.cumsum(counts)
            for i, target in enumerate(q * total):
                b = int(np.searchsorted(cumulative, target, side="left"))
                if b >= self.bins:
                    out[c, i] = self.high
                    continue
                before = cumulative[b] - counts[b]
                inside = (target - before) / counts[b] if counts[b] else 0.0
                out[c, i] = self.low + (b + inside) * width
        return out


@dataclass(order=True)
class GalleryPerson:
    """One person picked for the gallery: where to find it and why it was picked."""

    uncertainty: float
    frame_id: str = field(compare=False)
    person: int = field(compare=False)  # index among its frame's persons


@dataclass
class _GroupCounts:
    frames: int = 0
    labelled: int = 0
    rejected: int = 0
    persons: int = 0
    hard_persons: int = 0
    keypoints: int = 0
    hard_keypoints: int = 0


class RunStatistics:
    def __init__(self, gallery_size: int = 24, max_rejected: int = 200, max_spread_px: float = 50.0):
        self.gallery_size, self.max_rejected = gallery_size, max_rejected
        self.groups: dict[tuple[str, str], _GroupCounts] = {}
        self.rejected_by_reason: Counter[str] = Counter()
        self.rejected: list[dict] = []  # the first max_rejected, with their details
        self.persons_per_frame: Counter[int] = Counter()
        self.score = Histogram(0, 1, 50)
        self.confidence = Histogram(0, 1, 1000, NUM_JOINTS)
        self.spread = Histogram(0, max_spread_px, 500, NUM_JOINTS)
        self.depth_consistency = Histogram(0, 1, 50)
        self.depth_flags = np.zeros(4, np.int64)
        self.hard_per_joint = np.zeros(NUM_JOINTS, np.int64)
        # multi-view fusion (the shards read): fused persons, triangulated joints by their number of views, hard
        # joints, and the joints' reprojection error
        self.fused_persons = 0
        self.fused_joint_views = np.zeros(8, np.int64)  # joints with 0, 1, ..., 7+ views, over fused persons
        self.fused_hard_joints = 0
        self.fused_error = Histogram(0, 20, 200)
        self.shards = 0  # shards folded in by add
        self.sampled: tuple[int, int, int] | None = None  # (shards read, shards of the run, seed) when sampled
        self.provenances: Counter[tuple[str, str]] = Counter()  # (config hash, code version) -> shards
        self._gallery: list[GalleryPerson] = []  # a min-heap on uncertainty: the root is the first to go

    @property
    def frames(self) -> int:
        return sum(g.frames for g in self.groups.values())

    @property
    def labelled(self) -> int:
        return sum(g.labelled for g in self.groups.values())

    @property
    def persons(self) -> int:
        return sum(g.persons for g in self.groups.values())

    @property
    def hard_persons(self) -> int:
        return sum(g.hard_persons for g in self.groups.values())

    def gallery(self) -> list[GalleryPerson]:
        """The kept persons, most uncertain first."""
        return sorted(self._gallery, reverse=True)

    def add_index(self, run: LabelRun) -> None:
        """The counts of the whole run from its index (no shard opened but those of the first `max_rejected`
        rejected frames, for their details): frames, rejects by reason, persons and hard persons per (day, camera),
        persons per frame, the detector score, each joint's hard share and the gallery. Then `add(shard,
        counts=False)` adds the distributions only the shards hold. The day comes from the frame id alone here
        (the index has no color path)."""
        from orpose.label_store.index import load_person_index, person_offsets

        index, persons = run.index, load_person_index(run.path)
        labelled = index.status == STATUS_LABELLED
        cameras, camera_of_frame = np.unique(index.camera_id, return_inverse=True)
        # the day is a folder of the frame id: read once per distinct folder, not once per frame
        folders, folder_of_frame = np.unique(_folders(index.frame_id), return_inverse=True)
        day_names, day_of_folder = np.unique([day_of(f.decode() + "/") for f in folders], return_inverse=True)
        group_of_frame = day_of_folder.reshape(-1)[folder_of_frame.reshape(-1)] * len(cameras)
        group_of_frame += camera_of_frame.reshape(-1)
        groups = len(day_names) * len(cameras)
        group_of_person = np.repeat(group_of_frame, index.persons)  # rejected frames have no person rows
        sums = {
            "frames": np.bincount(group_of_frame, minlength=groups),
            "labelled": np.bincount(group_of_frame[labelled], minlength=groups),
            "persons": np.bincount(group_of_person, minlength=groups),
            "hard_persons": np.bincount(group_of_person[persons.hard_valid], minlength=groups),
            "hard_keypoints": np.bincount(group_of_person, weights=persons.hard_keypoints, minlength=groups),
        }
        del group_of_person
        for group in np.flatnonzero(sums["frames"]):
            key = (str(day_names[group // len(cameras)]), cameras[group % len(cameras)].decode())
            counts = self.groups.setdefault(key, _GroupCounts())
            counts.frames += int(sums["frames"][group])
            counts.labelled += int(sums["labelled"][group])
            counts.rejected += int(sums["frames"][group] - sums["labelled"][group])
            counts.persons += int(sums["persons"][group])
            counts.hard_persons += int(sums["hard_persons"][group])
            counts.keypoints += int(sums["persons"][group]) * NUM_JOINTS
            counts.hard_keypoints += int(sums["hard_keypoints"][group])
        for reason, n in zip(*np.unique(index.reject_reason[~labelled], return_counts=True)):
            self.rejected_by_reason[reason.decode()] += int(n)
        for position in np.flatnonzero(~labelled)[: self.max_rejected]:
            self.rejected.append(_rejected_entry(run.frame_at(int(position)).frame))
        self.persons_per_frame.update({int(n): int(c) for n, c in zip(*np.unique(index.persons[labelled],
                                                                                  return_counts=True))})  # fmt: skip
        self.score.add(persons.score)
        self.hard_per_joint += persons.hard_per_joint()
        # the gallery: the least confident persons, without sorting every person
        confidence = persons.confidence_mean
        picked = np.arange(len(confidence))
        if len(picked) > self.gallery_size:
            picked = np.argpartition(confidence, self.gallery_size - 1)[: self.gallery_size]
        first = person_offsets(index.persons)  # frame i owns person rows first[i]:first[i + 1]
        for row in picked[np.argsort(confidence[picked], kind="stable")]:
            position = int(np.searchsorted(first, row, side="right")) - 1  # the frame that owns person row `row`
            uncertainty = 1.0 - float(confidence[row])
            entry = GalleryPerson(uncertainty, index.frame_id_at(position), int(row - first[position]))
            heapq.heappush(self._gallery, entry)

    def add(self, shard: ShardLabels, counts: bool = True) -> None:
        """Fold one shard in; `counts=False` after `add_index`, which counted the run already: only what the
        index lacks (each joint's confidence and TTA spread, depth consistency and flags, provenance)."""
        frames, persons, offsets = shard.frames, shard.persons, shard.person_offset
        self.shards += 1
        self.provenances[(str(shard.provenance.get("config_hash")), str(shard.provenance.get("code_version")))] += 1
        if not counts:
            if len(persons["score"]):
                self._add_distributions(persons)
            return
        labelled = frames["status"] == STATUS_LABELLED
        keys = [(day_of(f, c), cam) for f, c, cam in zip(frames["frame_id"], frames["color_path"], frames["camera_id"])]
        hard_valid, hard_mask = persons["hard_valid"], persons["hard_mask"]
        for i, key in enumerate(keys):
            group = self.groups.setdefault(key, _GroupCounts())
            group.frames += 1
            if not labelled[i]:
                group.rejected += 1
                reason = str(frames["reject_reason"][i])
                self.rejected_by_reason[reason] += 1
                if len(self.rejected) < self.max_rejected:
                    self.rejected.append(_rejected_entry({name: column[i] for name, column in frames.items()}))
                continue
            lo, hi = offsets[i], offsets[i + 1]
            group.labelled += 1
            group.persons += int(hi - lo)
            group.hard_persons += int(hard_valid[lo:hi].sum())
            group.keypoints += int(hi - lo) * NUM_JOINTS
            group.hard_keypoints += int(hard_mask[lo:hi].sum())
            self.persons_per_frame[int(hi - lo)] += 1
        if not len(persons["score"]):
            return
        self.hard_per_joint += hard_mask.sum(0)
        self.score.add(persons["score"])
        self._add_distributions(persons)
        frame_of = persons["frame_index"]
        uncertainty = person_uncertainty(persons["keypoints_2d"])
        # Only persons that could enter the heap are looked at: at most gallery_size per shard.
        for row in np.argsort(-uncertainty, kind="stable")[: self.gallery_size]:
            frame_row = int(frame_of[row])
            frame_id, index = str(frames["frame_id"][frame_row]), int(row - offsets[frame_row])
            entry = GalleryPerson(float(uncertainty[row]), frame_id, index)
            if len(self._gallery) < self.gallery_size:
                heapq.heappush(self._gallery, entry)
            elif entry > self._gallery[0]:
                heapq.heapreplace(self._gallery, entry)
            else:
                break

    def _add_distributions(self, persons: dict[str, np.ndarray]) -> None:
        self.confidence.add(persons["keypoints_2d"][..., 2])
        self.spread.add(persons["keypoint_spread"])
        self.depth_consistency.add(persons["depth_consistency"].ravel())
        self.depth_flags += np.bincount(persons["depth_flag"].ravel().astype(np.int64), minlength=4)[:4]
        if "fusion_group" not in persons:  # hand-built persons without the multi-view fields: none fused
            return
        fused = persons["fusion_group"] >= 0
        if fused.any():
            self.fused_persons += int(fused.sum())
            views = np.minimum(persons["pose3d_room_views"][fused].ravel().astype(np.int64), 7)
            self.fused_joint_views += np.bincount(views, minlength=8)
            self.fused_hard_joints += int(persons["pose3d_room_hard"][fused].sum())
            self.fused_error.add(persons["pose3d_room_error_px"][fused].ravel())

    def hard_fraction_per_joint(self) -> np.ndarray:
        """How often each joint of a labelled person is in the hard set (17; NaN without persons)."""
        persons = self.persons
        return self.hard_per_joint / persons if persons else np.full(NUM_JOINTS, np.nan)


def sample_shards(count: int, sample: int | None, seed: int = 0) -> np.ndarray:
    """Positions of `sample` of `count` shards drawn with `seed`, in run order (every shard when None)."""
    if sample is None or sample >= count:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size=sample, replace=False))


def collect_statistics(
    run: LabelRun | str | Path, progress: bool = False, sample: int | None = None, seed: int = 0, **settings
) -> RunStatistics:
    """The statistics of a run: every shard folded in; or, with `sample`, the counts of the whole run from its index
    (`RunStatistics.add_index`) and the distributions only the shards hold from `sample` shards drawn with `seed`
    (`RunStatistics.sampled` records how many)."""
    run = run if isinstance(run, LabelRun) else LabelRun(run)
    stats = RunStatistics(**settings)
    positions = sample_shards(len(run.shard_files), sample, seed)
    from_index = sample is not None and run.path.is_dir()
    if from_index:
        stats.add_index(run)
        stats.sampled = (len(positions), len(run.shard_files), seed)
    shards = run.shards(positions)
    if progress:
        from tqdm import tqdm

        shards = tqdm(shards, total=len(positions), desc="reading shards", unit="shard")
    for shard in shards:
        stats.add(shard, counts=not from_index)
    return stats
