"""Comparing two label sets frame by frame: what a teacher upgrade or a CI regression is judged by.

Every stored field of the label format (label_store/schema.py) is compared, each with a stated
tolerance (`Tolerances`); `FRAME_CHECKS` and `PERSON_CHECKS` say which rule each field gets.
Persons are matched per frame by box IoU (greedy, best pairs first, IoU >= `min_iou`); unmatched
persons are added or removed. Rules for a matched person's fields:

- NaN must match NaN in place and nowhere else (a pose that became NaN is a change, never a pass);
- positions (boxes, keypoints on the color and depth grids) within a largest displacement, and
  their mean signed displacement over the whole label set within `bias_px`: a consistent
  sub-pixel shift (a half-pixel convention broken) is caught even below the largest one;
- flags (hard keypoints, hard skeleton, depth flags) exactly; masks by IoU; numbers by absolute
  difference.
Paths are machine-specific: `color_path` and `depth_path` are compared by file name, and
`reject_detail` with the folders of its paths removed.

A label set is a `LabelRun` (a run directory or a shard) or a reference JSON written by
`reference_from_run` (the CI regression's reviewed reference; NaN stored as null). A run is read frame by
frame (its frames looked up through its index), and what a comparison keeps is bounded whatever the runs'
sizes: counts, running sums for the bias, the displacements exactly up to `EXACT_CHANGES` values and as a
histogram beyond, and the first `MAX_KEPT` problems and frame ids (every one counted).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from orpose.frames.geometry import box_iou
from orpose.joints import COCO_KEYPOINTS, H36M_JOINTS
from orpose.label_store.reader import FrameLabels, LabelRun
from orpose.label_store.schema import FRAME_FIELDS, PERSON_FIELDS, STR, filled
from orpose.label_store.statistics import Histogram

__all__ = [
    "Tolerances", "Comparison", "compare", "reference_from_run", "load_labels", "FRAME_CHECKS", "PERSON_CHECKS",
    "PRECISION_TOLERANCES", "tolerances_for",
]  # fmt: skip

REFERENCE_FORMAT = "or-pose-labels/reference"
REFERENCE_VERSION = 2
MAX_KEPT = 10_000  # problems (and frame ids in one set only) kept for the report; every one is counted
EXACT_CHANGES = 1_000_000  # displacements kept for exact quantiles (8 MB); beyond, a histogram


@dataclass(frozen=True)
class Tolerances:
    keypoint_px: float = 1.0  # largest displacement of a keypoint (color and depth grids)
    confidence: float = 0.02  # largest keypoint confidence change
    box_px: float = 1.0  # largest box corner displacement
    pose3d_mm: float = 5.0  # largest joint change of pose3d_soft, pose3d_hard, pose3d_camera
    added: int = 0  # persons allowed to appear per frame
    removed: int = 0  # persons allowed to disappear per frame
    score: float = 0.02  # largest detector score change
    spread_px: float = 1.0  # largest change of a keypoint's TTA spread
    consistency: float = 0.05  # largest depth_consistency change
    mask_iou: float = 0.9  # smallest IoU between a matched person's two masks
    bias_px: float = 0.1  # largest mean signed displacement (x or y) of a position field over the label set
    # Bounds on the distribution of matched changes over the whole label set (None: not checked). Reduced
    # precision moves most keypoints a little and lets a few ambiguous heatmaps jump to their other mode, so
    # its tolerances bound the median and the 90th percentile and leave the largest changes free.
    keypoint_px_median: float | None = None  # median keypoint displacement (color), px
    keypoint_px_q90: float | None = None  # its 90th percentile, px
    pose3d_mm_median: float | None = None  # median soft-3D joint change, mm
    pose3d_mm_q90: float | None = None  # its 90th percentile, mm
    # Share of the flags (hard keypoints, valid hard skeletons, depth flags) allowed to differ over the label set.
    # 0: every one must match, each difference reported where it is; above 0, confidences near a threshold may
    # cross it and only the share is held.
    flag_share: float = 0.0


# How far two runs of the same teacher on the same frames may differ when only the device, the precision or a speed
# lever (channels-last, merged masks, views per forward) differs: `labels bench`'s "same labels" and `labels diff
# --tolerances-of`. Each is about twice the largest change measured (tools/lever_spread.py: the tiny teacher's
# levers against fp32 on 16 and 48 held-out synthetic frames, docs/benchmarks.md "Each lever against fp32"),
# never widened to make a run pass. Masks are left out where one side merges them (`detector.masks`).
_FP32 = Tolerances(
    keypoint_px=0.12,  # 0.061 px: channels-last or 8 views a forward against fp32 (other summation order)
    confidence=2e-3,  # 8e-4
    box_px=0.01,  # 8e-5
    pose3d_mm=2.2,  # 1.08 mm with compile (0.24 channels-last)
    consistency=0.012,  # 0.006 with compile
    # a keypoint's TTA spread comes from each view's own heatmap maximum, which a flat heatmap can move anywhere:
    # 39.5 px with compile while the fused keypoint moved 0.02 px; the keypoints above hold the heatmaps
    spread_px=float("inf"),
)
_REDUCED = Tolerances(
    # bf16 against fp32, two samples (16 frames, seed 4242, 36 persons | 48 frames, seed 4343, 154 persons): keypoints
    # moved 0.12 | 0.09 px at the median and 1.35 | 0.67 px at the 90th percentile, but a few ambiguous heatmaps
    # (3 % of the joints) jumped to their other mode, up to 176 px, at any confidence: the distribution is
    # bounded, the largest change is not.
    keypoint_px=float("inf"),
    keypoint_px_median=0.25,
    keypoint_px_q90=2.7,
    pose3d_mm=float("inf"),
    pose3d_mm_median=2.7,  # 1.35 | 1.07 mm
    pose3d_mm_q90=94.0,  # 46.9 | 7.4 mm (the lifter follows the jumping joints)
    confidence=float("inf"),  # 0.34 | 0.13 where a heatmap jumped
    spread_px=float("inf"),
    consistency=float("inf"),
    box_px=50.0,  # 12.9 | 12.5 px, 24.6 px with compile (low-scoring boxes)
    score=0.3,  # 0.15 | 0.03 (0.09 with compile)
    # IoU 0.85 | 0.86 at the lowest, 0.57 with compile (a low-scoring box that moved 25 px): masks are held
    # loosely, a person's box, keypoints and 3D by the bounds above
    mask_iou=0.3,
    added=1,  # 0 | 1 person a frame: a box scored near the threshold crosses it
    removed=1,
    # the mean signed shift is not held: on a few frames one jumping joint moves it past a pixel (1.6 px on 4
    # frames), and a consistent shift of every keypoint shows in the median bound above
    bias_px=float("inf"),
    flag_share=0.005,  # 0.16 | 0.22 % of the hard and depth flags: confidences crossing the hard threshold
)
PRECISION_TOLERANCES = {
    ("cpu", "fp32"): _FP32,
    # cuDNN's convolutions run TF32 by default: the H200 moved three wrists' soft 3D by 0.5-0.7 mm against the CPU
    # (tiny teacher, docs/gpu/2026-11-30-h200.md), within the fp32 levers' 2.2 mm; everything else within 0.05 px.
    ("cuda", "fp32"): _FP32,
    ("cpu", "bf16"): _REDUCED,
    # not measured on a GPU yet (the perf phase of tools/gpu_check.sh measures them); fp16 keeps 3 more mantissa
    # bits than bf16, so bf16's bounds hold for it
    ("cuda", "bf16"): _REDUCED,
    ("cuda", "fp16"): _REDUCED,
}


def tolerances_for(device: str, precision: str) -> Tolerances:
    """The tolerances of PRECISION_TOLERANCES for a device type ("cpu", "cuda") and precision ("fp32", "bf16",
    "fp16"): the largest of the two sides' when they differ is the caller's to pick (`labels diff` takes the
    candidate's)."""
    key = (device, precision)
    if key not in PRECISION_TOLERANCES:
        known = ", ".join(f"{d}:{p}" for d, p in PRECISION_TOLERANCES)
        raise ValueError(f"no measured tolerances for {device}:{precision} (known: {known})")
    return PRECISION_TOLERANCES[key]


# Person field -> (rule, tolerance name, joint names or None). Rules: "box", "position" (x, y
# [, confidence]), "pose" (3D joints, mm), "number", "flags" (exact), "mask".
PERSON_CHECKS = {
    "box": ("box", "box_px", None),
    "score": ("number", "score", None),
    "mask_rle": ("mask", "mask_iou", None),
    "keypoints_2d": ("position", "keypoint_px", COCO_KEYPOINTS),
    "keypoint_spread": ("number", "spread_px", COCO_KEYPOINTS),
    "hard_mask": ("flags", None, COCO_KEYPOINTS),
    "hard_valid": ("flags", None, None),
    "pose3d_soft": ("pose", "pose3d_mm", H36M_JOINTS),
    "pose3d_hard": ("pose", "pose3d_mm", H36M_JOINTS),
    "depth_keypoints": ("position", "keypoint_px", COCO_KEYPOINTS),
    "depth_flag": ("flags", None, COCO_KEYPOINTS),
    "pose3d_camera": ("pose", "pose3d_mm", H36M_JOINTS),
    "depth_consistency": ("number", "consistency", COCO_KEYPOINTS),
    # multi-view fusion (COCO-17 joints): a triangulated joint moves with the 2D keypoints it came from
    "pose3d_room": ("pose", "pose3d_mm", COCO_KEYPOINTS),
    "pose3d_room_camera": ("pose", "pose3d_mm", COCO_KEYPOINTS),
    "pose3d_room_views": ("flags", None, COCO_KEYPOINTS),
    "pose3d_room_error_px": ("number", "keypoint_px", COCO_KEYPOINTS),
    "pose3d_room_hard": ("flags", None, COCO_KEYPOINTS),
}
# frame_index is the person's row number in its shard, fusion_group its group's number in its instant: structure,
# not labels (who is fused with whom shows in the pose3d_room fields of the matched persons).
_NOT_COMPARED = {"frame_index", "fusion_group"}
FRAME_CHECKS = (
    "status",
    "reject_reason",
    "reject_detail",
    "camera_id",
    "color_path",
    "depth_path",
    "color_size",
    "depth_size",
    "depth_unit_mm",
    "timestamp",
    "instant",
)
assert {f.name for f in PERSON_FIELDS} == set(PERSON_CHECKS) | _NOT_COMPARED, "a person field without a rule"
assert {f.name for f in FRAME_FIELDS} == set(FRAME_CHECKS) | {"frame_id"}, "a frame field without a rule"

_FOLDERS = re.compile(r"(?:[A-Za-z]:)?[\\/][^\s'\"()]*[\\/]")


def _machine_free(name: str, value):
    """A frame field as comparable across machines: file names, not folders."""
    if name in ("color_path", "depth_path"):
        return Path(str(value)).name
    if name == "reject_detail":
        return _FOLDERS.sub("", str(value))
    return value


class Capped(list):
    """A list that keeps its first `cap` items and counts every one appended (`total`)."""

    def __init__(self, cap: int = MAX_KEPT):
        super().__init__()
        self.cap, self.total = cap, 0

    def append(self, item) -> None:
        self.total += 1
        if len(self) < self.cap:
            super().append(item)


class Changes:
    """Sizes of changes (px or mm): exact quantiles up to `EXACT_CHANGES` values, then read from a histogram over
    [0, `high`] (to `high` / 10,000; larger values count above it); the largest is always exact."""

    def __init__(self, high: float):
        self._exact: list[np.ndarray] | None = []
        self._histogram = Histogram(0.0, high, 10_000)
        self.count, self.max = 0, 0.0

    def extend(self, values) -> None:
        values = np.asarray(values, np.float64).ravel()
        values = values[np.isfinite(values)]
        if not len(values):
            return
        self.count += len(values)
        self.max = max(self.max, float(values.max()))
        self._histogram.add(values)
        if self._exact is not None:
            self._exact.append(values)
            if self.count > EXACT_CHANGES:
                self._exact = None

    def __len__(self) -> int:
        return self.count

    def quantiles(self, qs=(0.5, 0.9, 0.99, 1.0)) -> np.ndarray:
        if not self.count:
            return np.full(len(qs), np.nan)
        if self._exact is not None:
            return np.quantile(np.concatenate(self._exact), qs)
        return np.array([self.max if q >= 1.0 else self._histogram.quantiles([q])[0, 0] for q in qs])


@dataclass
class Comparison:
    frames: int = 0
    frames_only_in_a: Capped = field(default_factory=Capped)  # their ids (the first MAX_KEPT); .total counts all
    frames_only_in_b: Capped = field(default_factory=Capped)
    matched: int = 0
    added: int = 0
    removed: int = 0
    keypoint_px: Changes = field(default_factory=lambda: Changes(100.0))  # matched keypoint displacements (color)
    pose3d_mm: Changes = field(default_factory=lambda: Changes(1000.0))  # matched soft-3D joint changes
    signed: dict = field(default_factory=dict)  # position field -> (sum of (dx, dy), count), for the bias
    problems: Capped = field(default_factory=Capped)  # readable lines, one per tolerance exceeded
    depth_resampled: int = 0  # joints whose depth fields were not compared (see _resampled_joints)
    flags: int = 0  # flags compared (hard keypoints, hard_valid, depth flags of matched persons)
    flags_changed: int = 0  # of which differ
    # tolerance name -> the largest change seen over matched persons (mask_iou: the smallest IoU), whatever the
    # tolerance: what each tolerance would need for these two sets to pass (`needed`)
    largest: dict = field(default_factory=dict)

    def saw(self, tolerance_name: str, values) -> None:
        """Fold matched changes (any shape, NaN ignored) into `largest` for that tolerance."""
        values = np.asarray(values, np.float64)
        values = values[np.isfinite(values)]
        if not len(values):
            return
        if tolerance_name == "mask_iou":
            self.largest[tolerance_name] = min(self.largest.get(tolerance_name, 1.0), float(values.min()))
        else:
            self.largest[tolerance_name] = max(self.largest.get(tolerance_name, 0.0), float(values.max()))

    def needed(self) -> dict[str, float]:
        """The tolerances these two label sets needed to pass: the largest change per tolerance (mask_iou the
        smallest IoU), and the persons added and removed in the worst frame (`added`, `removed`)."""
        return dict(self.largest)

    def quantiles(self, changes: Changes, qs=(0.5, 0.9, 0.99, 1.0)) -> str:
        if not len(changes):
            return "n/a"
        return ", ".join(f"q{int(q * 100)} {v:.3g}" for q, v in zip(qs, changes.quantiles(qs)))

    def add_signed(self, name: str, moves: np.ndarray) -> None:
        """Fold signed (dx, dy) rows of a position field into its running mean (finite rows only)."""
        moves = np.asarray(moves, np.float64).reshape(-1, 2)
        moves = moves[np.isfinite(moves).all(axis=1)]
        total, count = self.signed.get(name, (np.zeros(2), 0))
        self.signed[name] = (total + moves.sum(axis=0), count + len(moves))

    def bias(self, name: str) -> np.ndarray | None:
        """Mean signed (dx, dy) of a position field over every matched finite value."""
        total, count = self.signed.get(name, (None, 0))
        return total / count if count else None

    def lines(self) -> list[str]:
        out = [
            f"frames compared: {self.frames} (only in A: {self.frames_only_in_a.total}, "
            f"only in B: {self.frames_only_in_b.total})",
            f"persons: {self.matched} matched, {self.added} added, {self.removed} removed",
            f"keypoint displacement px: {self.quantiles(self.keypoint_px)}",
            f"soft 3D change mm: {self.quantiles(self.pose3d_mm)}",
        ]
        if self.depth_resampled:
            out.append(
                f"depth fields not compared for {self.depth_resampled} joint(s) whose color keypoint moved to "
                "another pixel (the depth transfer read another depth pixel there)"
            )
        out += [f"  {p}" for p in self.problems[:50]]
        if self.problems.total > 50:
            out.append(f"  ... {self.problems.total - 50} more")
        return out

    @property
    def ok(self) -> bool:
        return not self.problems.total


def _frame_of(labels: FrameLabels) -> dict:
    frame = {name: labels.frame[name] for name in FRAME_CHECKS}
    frame["persons"] = {name: labels.persons[name] for name in PERSON_CHECKS}
    return frame


def _frames_of_run(run: LabelRun) -> dict[str, dict]:
    return {labels.frame_id: _frame_of(labels) for labels in run}


def _to_json(value):
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            rounded = np.round(value.astype(np.float64), 3)
            return np.where(np.isnan(rounded), None, rounded).tolist()
        return value.tolist()
    if isinstance(value, (np.floating, float)):
        return None if np.isnan(value) else round(float(value), 6)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, bytes):
        return value.decode()
    return value


def reference_from_run(run: LabelRun | str, path: str | Path) -> None:
    """Write a run's labels, every compared field, as JSON (floats to 3 decimals, NaN as null)."""
    run = run if isinstance(run, LabelRun) else LabelRun(run)
    frames = {}
    for frame_id, f in _frames_of_run(run).items():
        entry = {name: _to_json(_machine_free(name, f[name])) for name in FRAME_CHECKS}
        entry["persons"] = {name: _to_json(np.asarray(v)) for name, v in f["persons"].items()}
        frames[frame_id] = entry
    document = {"format": REFERENCE_FORMAT, "version": REFERENCE_VERSION, "frames": frames}
    Path(path).write_text(json.dumps(document, indent=0) + "\n")


_SCHEMA = {f.name: f for f in (*FRAME_FIELDS, *PERSON_FIELDS)}


def _from_json(name: str, value, rows: bool):
    f = _SCHEMA[name]
    if f.dtype is STR:
        return np.array(value, dtype=object) if rows else value
    if value is None:
        return np.float64(np.nan)
    array = np.array(value, dtype=object)
    array = np.where(array == None, np.nan, array).astype(f.dtype) if array.size else np.asarray(array, f.dtype)  # noqa: E711
    return array.reshape(-1, *f.shape) if rows else array.reshape(f.shape)


def load_labels(source) -> dict[str, dict]:
    """A run directory, a shard file, a LabelRun, a reference JSON, or such a dict -> frames to arrays."""
    labels = _label_set(source)
    return labels if isinstance(labels, dict) else _frames_of_run(labels)


def _label_set(source) -> dict[str, dict] | LabelRun:
    """A run (directory, shard, LabelRun) stays a LabelRun, read frame by frame (`compare`); a reference JSON is
    loaded; a dict of frames is taken as it is."""
    if isinstance(source, (dict, LabelRun)):
        return source
    path = Path(source)
    if path.suffix != ".json":
        return LabelRun(path)
    data = json.loads(path.read_text())
    if data.get("format") != REFERENCE_FORMAT or data.get("version") != REFERENCE_VERSION:
        raise ValueError(
            f"{path}: not a version-{REFERENCE_VERSION} reference (format {data.get('format')!r}, "
            f"version {data.get('version')!r}); rewrite it with `make regression-reference`"
        )
    return {frame_id: _reference_frame(f) for frame_id, f in data["frames"].items()}


def _reference_frame(f: dict) -> dict:
    """One frame of a reference JSON as arrays. A field the reference predates (written before shard version 2
    added it) reads as the field's fill value, as a shard of that version does (`label_store.schema`)."""
    frame = {name: _from_json(name, f[name] if name in f else _SCHEMA[name].fill, rows=False) for name in FRAME_CHECKS}
    persons = {name: _from_json(name, v, rows=True) for name, v in f["persons"].items()}
    rows = len(f["persons"].get("box", []))
    for name in PERSON_CHECKS:
        if name not in persons:
            persons[name] = filled(_SCHEMA[name], rows)
    return {**frame, "persons": persons}


def _frame_ids(labels: dict[str, dict] | LabelRun) -> np.ndarray:
    """The frame ids of a label set as bytes (a run's from its index: in its order)."""
    if isinstance(labels, LabelRun):
        return labels.index.frame_id
    ids = sorted(labels)
    return np.array([i.encode() for i in ids], dtype=bytes) if ids else np.zeros(0, "S1")


def _frames_in(labels: dict[str, dict] | LabelRun, ids: np.ndarray, keep: np.ndarray):
    """(frame id, frame) of the label set's frames where `keep` (aligned with `_frame_ids`), in that order; a run
    is read shard by shard."""
    if isinstance(labels, dict):
        for frame_id in ids[keep]:
            yield frame_id.decode(), labels[frame_id.decode()]
        return
    for position, frame in enumerate(labels):
        if keep[position]:
            yield frame.frame_id, _frame_of(frame)


def _same_frame_value(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        a, b = a.astype(np.float64), b.astype(np.float64)
        return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b)) | np.isclose(a, b, atol=1e-6)))
    return a.shape == b.shape and bool(np.all(a == b))


def _shown(value):
    """A value as plain Python, for messages (no numpy reprs)."""
    return value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value


def _mask_iou(rle_a: str, rle_b: str, size: tuple[int, int]) -> float:
    from pycocotools import mask as mask_utils

    height, width = size
    a = mask_utils.decode({"size": [height, width], "counts": rle_a})
    b = mask_utils.decode({"size": [height, width], "counts": rle_b})
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def _joint(names, index) -> str:
    return names[index] if names is not None else str(index)


def _compare_person(
    result: Comparison,
    where: str,
    pa: dict,
    pb: dict,
    i: int,
    j: int,
    t: Tolerances,
    mask_size: tuple[int, int] | None,
    fields: tuple[str, ...],
) -> None:
    resampled = _resampled_joints(pa, pb, i, j) if any(name in DEPTH_FIELDS for name in fields) else None
    if resampled is not None:
        result.depth_resampled += int(resampled.sum())
    for name in fields:
        rule, tolerance_name, names = PERSON_CHECKS[name]
        a, b = pa[name][i], pb[name][j]
        if name in DEPTH_FIELDS and resampled is not None and resampled.any():
            a, b = np.array(a, copy=True), np.array(b, copy=True)
            a[resampled] = b[resampled]  # not compared: another depth pixel was read (the same value on both sides)
        limit = getattr(t, tolerance_name) if tolerance_name else None
        here = f"{where}: {name}"
        if rule == "mask":
            iou = _mask_iou(str(a), str(b), mask_size)
            result.saw(tolerance_name, iou)
            if iou < limit:
                result.problems.append(f"{here}: mask IoU {iou:.3f} (tolerance {limit})")
        elif rule == "flags":
            _compare_flags(result, here, np.asarray(a), np.asarray(b), names, report=not t.flag_share)
        else:
            a, b = np.asarray(a).astype(np.float64), np.asarray(b).astype(np.float64)
            if not _nan_agrees(result, here, rule, a, b, names):
                continue
            if rule == "position":
                _compare_position(result, here, name, a, b, names, limit, t.confidence)
            else:
                _compare_values(result, here, name, rule, a, b, names, limit)


def _compare_flags(result: Comparison, here: str, a: np.ndarray, b: np.ndarray, names, report: bool) -> None:
    differ = np.flatnonzero(np.atleast_1d(a != b))
    result.flags += np.atleast_1d(a).size
    result.flags_changed += len(differ)
    if len(differ) and report:
        result.problems.append(
            f"{here}: {', '.join(_joint(names, k) for k in differ[:5]) if names else ''} "
            f"{np.atleast_1d(a)[differ[:5]].tolist()} -> {np.atleast_1d(b)[differ[:5]].tolist()}"
        )


def _nan_agrees(result: Comparison, here: str, rule: str, a: np.ndarray, b: np.ndarray, names) -> bool:
    """Whether A and B have NaN at the same joints (a position's confidence column aside); else a problem."""
    nan_a, nan_b = (np.isnan(a[..., :2]), np.isnan(b[..., :2])) if rule == "position" else (np.isnan(a), np.isnan(b))
    if rule in ("position", "pose"):
        nan_a, nan_b = nan_a.any(-1), nan_b.any(-1)
    if not np.any(nan_a != nan_b):
        return True
    k = int(np.flatnonzero(np.atleast_1d(nan_a != nan_b))[0])
    side = "B" if np.atleast_1d(nan_b)[k] else "A"
    result.problems.append(f"{here} {_joint(names, k)}: NaN in {side} only")
    return False


def _compare_position(
    result: Comparison, here: str, name: str, a: np.ndarray, b: np.ndarray, names, limit: float, confidence: float
) -> None:
    """Image positions (x, y[, confidence]): the largest move in pixels, and the confidence's change."""
    xy_a, xy_b = a[..., :2], b[..., :2]
    move = np.linalg.norm(xy_a - xy_b, axis=-1)
    result.add_signed(name, xy_b - xy_a)
    if name == "keypoints_2d":
        result.keypoint_px.extend(move)
    result.saw("keypoint_px", move)
    worst = int(np.nanargmax(move)) if np.isfinite(move).any() else None
    if worst is not None and move[worst] > limit:
        result.problems.append(
            f"{here} {_joint(names, worst)}: ({xy_a[worst, 0]:.1f}, {xy_a[worst, 1]:.1f}) -> "
            f"({xy_b[worst, 0]:.1f}, {xy_b[worst, 1]:.1f}), {move[worst]:.2f} px (tolerance {limit})"
        )
    if a.shape[-1] == 3:
        change = np.abs(a[:, 2] - b[:, 2])
        result.saw("confidence", change)
        if np.isfinite(change).any() and np.nanmax(change) > confidence:
            k = int(np.nanargmax(change))
            result.problems.append(
                f"{here} {_joint(names, k)}: confidence changed by {change[k]:.3g} (tolerance {confidence})"
            )


def _compare_values(
    result: Comparison, here: str, name: str, rule: str, a: np.ndarray, b: np.ndarray, names, limit: float
) -> None:
    """Boxes (largest corner move, px), 3D poses (largest joint move, mm) and plain numbers."""
    if rule == "box":
        corner = np.abs(a - b).max()
        result.add_signed(name, b - a)
        result.saw("box_px", corner)
        if corner > limit:
            result.problems.append(f"{here}: moved {corner:.2f} px (tolerance {limit})")
    elif rule == "pose":
        change = np.linalg.norm(a - b, axis=-1)
        if name == "pose3d_soft":
            result.pose3d_mm.extend(change)
        result.saw("pose3d_mm", change)
        if np.isfinite(change).any() and np.nanmax(change) > limit:
            k = int(np.nanargmax(change))
            result.problems.append(f"{here} {_joint(names, k)}: moved {change[k]:.1f} mm (tolerance {limit})")
    else:  # number
        change = np.atleast_1d(np.abs(a - b))
        result.saw(PERSON_CHECKS[name][1], change)
        if np.isfinite(change).any() and np.nanmax(change) > limit:
            k = int(np.nanargmax(change))
            result.problems.append(
                f"{here}{' ' + _joint(names, k) if names else ''}: changed by {change[k]:.3g} (tolerance {limit})"
            )


def _check_distributions(result: Comparison, t: Tolerances) -> None:
    """The median and 90th-percentile bounds of Tolerances over every matched keypoint and soft-3D joint, and the
    share of flags that changed."""
    if result.flags:
        share = result.flags_changed / result.flags
        result.largest["flag_share"] = share
        if t.flag_share and share > t.flag_share:
            result.problems.append(
                f"flags: {result.flags_changed} of {result.flags} changed ({share:.2%}, tolerance {t.flag_share:.2%})"
            )
    for changes, name, field_name, unit in (
        (result.keypoint_px, "keypoint_px", "keypoints_2d", "px"),
        (result.pose3d_mm, "pose3d_mm", "pose3d_soft", "mm"),
    ):
        if not len(changes):
            continue
        for label, q in (("median", 0.5), ("q90", 0.9)):
            value, limit = float(changes.quantiles((q,))[0]), getattr(t, f"{name}_{label}")
            result.largest[f"{name}_{label}"] = value
            if limit is not None and value > limit:
                result.problems.append(
                    f"{field_name}: {label} change over the label set {value:.3g} {unit} (tolerance {limit})"
                )


# Fields read from the depth image at the keypoint's pixel (stages/depth_transfer.py).
DEPTH_FIELDS = ("depth_keypoints", "depth_flag", "depth_consistency")


def _resampled_joints(pa: dict, pb: dict, i: int, j: int) -> np.ndarray | None:
    """Joints whose color keypoint rounds to another pixel in B than in A. The depth transfer reads
    the depth at the keypoint's rounded pixel (the nearest reading on the depth grid), so a sub-pixel
    move across a pixel boundary, such as float sums of another torch, CPU or GPU give, reads another
    depth pixel: at a depth edge another surface, a jump in the depth fields that is not a change of
    the labels. Those joints' depth fields are left out (counted in Comparison.depth_resampled); the
    color keypoint itself is still held to its tolerance."""
    if "keypoints_2d" not in pa or "keypoints_2d" not in pb:
        return None
    xy_a = np.asarray(pa["keypoints_2d"][i], np.float64)[:, :2]
    xy_b = np.asarray(pb["keypoints_2d"][j], np.float64)[:, :2]
    with np.errstate(invalid="ignore"):
        return np.any(np.round(xy_a) != np.round(xy_b), axis=-1) & np.isfinite(xy_a).all(-1) & np.isfinite(xy_b).all(-1)


def _pairs(boxes_a: np.ndarray, boxes_b: np.ndarray, min_iou: float) -> list[tuple[int, int]]:
    if not len(boxes_a) or not len(boxes_b):
        return []
    ious = np.nan_to_num(box_iou(boxes_a, boxes_b), nan=0.0)
    pairs, used_a, used_b = [], set(), set()
    for flat in np.argsort(-ious, axis=None):
        i, j = divmod(int(flat), len(boxes_b))
        if ious[i, j] < min_iou:
            break
        if i not in used_a and j not in used_b:
            pairs.append((i, j))
            used_a.add(i)
            used_b.add(j)
    return pairs


def compare(
    a,
    b,
    tolerances: Tolerances = Tolerances(),
    min_iou: float = 0.5,
    fields: tuple[str, ...] | None = None,
    progress: bool = False,
) -> Comparison:
    """Compare label set A (e.g. the reference) with B (e.g. the new run); see the module docstring.

    `fields` limits the comparison to those frame and person fields (default: every one), for
    label sets that store fewer (`labels bench`'s naive loop keeps boxes, scores, 2D and soft 3D).
    """
    la, lb = _label_set(a), _label_set(b)
    frame_fields = FRAME_CHECKS if fields is None else tuple(f for f in FRAME_CHECKS if f in fields)
    person_fields = tuple(PERSON_CHECKS) if fields is None else tuple(f for f in PERSON_CHECKS if f in fields)
    unknown = set(fields or ()) - set(FRAME_CHECKS) - set(PERSON_CHECKS)
    if unknown:
        raise ValueError(f"compare: unknown fields {sorted(unknown)}")
    result = Comparison()
    ids_a, ids_b = _frame_ids(la), _frame_ids(lb)
    in_b, in_a = np.isin(ids_a, ids_b), np.isin(ids_b, ids_a)
    for only, kept, side in (
        (ids_a[~in_b], result.frames_only_in_a, "A"),
        (ids_b[~in_a], result.frames_only_in_b, "B"),
    ):
        for frame_id in np.sort(only):
            kept.append(frame_id.decode())
            result.problems.append(f"{frame_id.decode()}: in {side} only")
    t = tolerances
    common = _frames_in(la, ids_a, in_b)
    if progress:  # tqdm comes with the teacher extra; the base install compares without a bar
        from tqdm import tqdm

        common = tqdm(common, total=int(in_b.sum()), desc="diff", unit="frame")
    for frame_id, fa in common:
        fb = lb[frame_id] if isinstance(lb, dict) else _frame_of(lb.get(frame_id))
        result.frames += 1
        for name in frame_fields:
            va, vb = _machine_free(name, fa[name]), _machine_free(name, fb[name])
            if not _same_frame_value(va, vb):
                result.problems.append(f"{frame_id}: {name} {_shown(va)!r} -> {_shown(vb)!r}")
        pa, pb = fa["persons"], fb["persons"]
        boxes_a = np.asarray(pa["box"], dtype=np.float64).reshape(-1, 4)
        boxes_b = np.asarray(pb["box"], dtype=np.float64).reshape(-1, 4)
        pairs = _pairs(boxes_a, boxes_b, min_iou)
        result.matched += len(pairs)
        result.removed += len(boxes_a) - len(pairs)
        result.added += len(boxes_b) - len(pairs)
        result.saw("removed", len(boxes_a) - len(pairs))
        result.saw("added", len(boxes_b) - len(pairs))
        if len(boxes_a) - len(pairs) > t.removed or len(boxes_b) - len(pairs) > t.added:
            result.problems.append(f"{frame_id}: {len(boxes_a)} persons -> {len(boxes_b)} ({len(pairs)} matched)")
        size = fa.get("color_size")
        mask_size = None if size is None else tuple(int(v) for v in np.asarray(size).ravel()[::-1])
        for i, j in pairs:
            _compare_person(result, f"{frame_id} person {i}", pa, pb, i, j, t, mask_size, person_fields)
    for name in sorted(result.signed):
        bias = result.bias(name)
        if bias is not None:
            result.saw("bias_px", np.abs(bias))
        if bias is not None and np.abs(bias).max() > t.bias_px:
            result.problems.append(
                f"{name}: every position moved on average by ({bias[0]:+.3f}, {bias[1]:+.3f}) px "
                f"(tolerance {t.bias_px}): a consistent shift"
            )
    _check_distributions(result, t)
    return result
