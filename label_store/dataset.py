"""A PyTorch Dataset for student trainers: images at a chosen resolution with their targets.

Each item is one labelled frame: the color or the depth image, down-sampled by `factor` (1, 8,
10, 12, any float, or "random": seed 000's schedule: 30 % no down-sampling, 35 % a factor drawn
uniformly in [2, 8], 35 % in [8, 12]), color with bilinear and depth with bicubic interpolation
(seed 000 and 002), and the soft and hard targets with their coordinates scaled exactly: a new
image of size (round(W / f), round(H / f)) scales x by s = W' / W, keypoints (pixel-index
coordinates) as (x + 0.5) * s - 0.5 and boxes (pixel-edge coordinates) as x * s.
Depth images are in millimetres, or mapped to [0, 255] over `depth_range_mm` (seed 002's students).

Two ways to read a run, with the same items (`make_item`):
- `PoseLabelDataset`, map-style: exact shuffles by the DataLoader's sampler, one frame read per item
  (for runs of the papers' size, ~80k frames);
- `PoseLabelStream` (`label_store/stream.py`), iterable: shards dealt to ranks and workers, read whole in
  one pass, shuffled through a buffer (for runs of any size; `labels bench-feed` compares them).
Both open the run through its index (`label_store/index.py`) and open shard files lazily in each worker.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import h5py
import numpy as np
from torch.utils.data import Dataset

from orpose.frames.calibration import Intrinsics, load_calibration
from orpose.frames.decode import decode_color, decode_depth
from orpose.label_store.index import RunIndex, load_index, shard_run_index
from orpose.label_store.packing import PackedItem, pack, pack_item
from orpose.label_store.reader import LabelRun
from orpose.label_store.schema import PERSON_FIELDS, STATUS_LABELLED, filled
from orpose.label_store.shard import read_dataset, read_field, shard_path

__all__ = [
    "PoseLabelDataset",
    "RunSource",
    "make_item",
    "ItemReader",
    "scaled_intrinsics",
    "ItemSpec",
    "eligible_frames",
    "item_factor",
    "scale_keypoints",
    "scale_boxes",
    "scaled_size",
    "draw_factor",
    "frame_columns",
    "person_columns",
]


def scaled_size(width: int, height: int, factor: float) -> tuple[int, int]:
    return max(1, int(round(width / factor))), max(1, int(round(height / factor)))


def scale_keypoints(xy: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Pixel-index coordinates under a resize by (sx, sy): pixel centres map to pixel centres."""
    return (np.asarray(xy, dtype=np.float64) + 0.5) * np.array([sx, sy]) - 0.5


def scale_boxes(boxes: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Pixel-edge coordinates under a resize by (sx, sy)."""
    return np.asarray(boxes, dtype=np.float64) * [sx, sy, sx, sy]


def draw_factor(rng: np.random.Generator) -> float:
    """Seed 000's resolution schedule."""
    u = rng.random()
    if u < 0.30:
        return 1.0
    if u < 0.65:
        return float(rng.uniform(2.0, 8.0))
    return float(rng.uniform(8.0, 12.0))


# The columns an item is made of: what a reader takes from a shard, and nothing else (a column read costs
# 0.4-0.8 ms whatever its size: a fifth of a 64-frame shard's read went to the depth columns of color items).
_COLOR_FRAME_COLUMNS = ("frame_id", "camera_id", "color_path")
_FRAME_COLUMNS = {
    "color": _COLOR_FRAME_COLUMNS,
    "depth": (*_COLOR_FRAME_COLUMNS, "depth_path", "depth_unit_mm", "color_size", "depth_size"),
    "rgbd": (*_COLOR_FRAME_COLUMNS, "depth_path", "depth_unit_mm", "color_size", "depth_size"),
}
_COMMON_PERSON_COLUMNS = (
    "box",
    "score",
    "keypoints_2d",
    "hard_mask",
    "hard_valid",
    "pose3d_soft",
    "pose3d_hard",
    "pose3d_camera",
    "pose3d_room_camera",  # multi-view fusion (fill values in runs without it, and in version-1 shards)
    "pose3d_room_hard",
)
_PERSON_COLUMNS = {
    "color": _COMMON_PERSON_COLUMNS,
    "depth": (*_COMMON_PERSON_COLUMNS, "depth_keypoints", "depth_flag"),
    "rgbd": (*_COMMON_PERSON_COLUMNS, "depth_keypoints", "depth_flag"),
}
_PERSON_FIELD = {f.name: f for f in PERSON_FIELDS}
IMAGE_DTYPES = ("float32", "native")
DEPTH_NORMS = ("0_255", "centered", "mm")
LABEL_SETS = ("soft", "hard")


def person_columns(modality: str) -> tuple[str, ...]:
    return _PERSON_COLUMNS[modality]


def frame_columns(modality: str) -> tuple[str, ...]:
    return _FRAME_COLUMNS[modality]


@dataclass(frozen=True)
class ItemSpec:
    """What an item holds, as `PoseLabelDataset` and `PoseLabelStream` are asked for it (their arguments of
    the same names, docs/reading_labels.md). Checked on construction."""

    modality: str = "color"
    depth_range_mm: tuple[float, float] | None = (0.0, 6000.0)
    depth_norm: str | Callable[[np.ndarray], np.ndarray] = "0_255"
    image_dtype: str = "float32"
    label_set: str = "soft"
    min_score: float | None = None
    keep_full: bool = False
    upsample: bool = False

    def __post_init__(self) -> None:
        if self.modality not in _PERSON_COLUMNS:
            raise ValueError(f"modality must be 'color', 'depth' or 'rgbd', got {self.modality!r}")
        if self.image_dtype not in IMAGE_DTYPES:
            raise ValueError(f"image_dtype must be one of {IMAGE_DTYPES}, got {self.image_dtype!r}")
        if not callable(self.depth_norm) and self.depth_norm not in DEPTH_NORMS:
            raise ValueError(f"depth_norm must be one of {DEPTH_NORMS} or a callable, got {self.depth_norm!r}")
        if self.depth_norm in ("0_255", "centered") and self.depth_range_mm is None and self.modality != "color":
            object.__setattr__(self, "depth_norm", "mm")  # no range: millimetres, as before depth_norm existed
        if self.image_dtype == "native" and self.modality != "color" and self.depth_norm not in ("0_255", "mm"):
            raise ValueError("image_dtype='native' gives integers: depth_norm '0_255' (uint8) or 'mm' (uint16)")
        if self.label_set not in LABEL_SETS:
            raise ValueError(f"label_set must be one of {LABEL_SETS}, got {self.label_set!r}")


def check_factor(factor: float | str) -> None:
    if factor != "random" and (not isinstance(factor, (int, float)) or factor < 1):
        raise ValueError(f"factor must be >= 1 or 'random', got {factor!r}")


def item_factor(factor: float | str, seed: int, epoch: int, position: int) -> float:
    """The item's down-sampling factor; "random" draws seed 000's schedule from (seed, epoch, the frame's
    position in the run index): the same frame gets the same factor from both readers, another each epoch."""
    if factor == "random":
        return draw_factor(np.random.default_rng([seed, epoch, position]))
    return float(factor)


def _normalise_depth(image_mm: np.ndarray, spec: ItemSpec) -> np.ndarray:
    if callable(spec.depth_norm):
        return spec.depth_norm(image_mm)
    if spec.depth_norm == "mm":
        return image_mm
    assert spec.depth_range_mm is not None  # ItemSpec turns a missing range into "mm"
    lo, hi = spec.depth_range_mm
    unit = np.clip((image_mm - lo) / (hi - lo), 0.0, 1.0)
    return unit * 255.0 if spec.depth_norm == "0_255" else unit - 0.5  # "centered": [-0.5, 0.5] (seed 003)


def _kept_persons(persons: dict, spec: ItemSpec) -> np.ndarray:
    keep = np.ones(len(persons["box"]), dtype=bool)
    if spec.label_set == "hard":
        keep &= np.asarray(persons["hard_valid"], dtype=bool)
    if spec.min_score is not None:
        keep &= np.asarray(persons["score"]) >= spec.min_score
    return keep


def scaled_intrinsics(intrinsics: Intrinsics, sx: float, sy: float) -> np.ndarray:
    """The 3x3 K of an image resized by (sx, sy), in the pixel-index convention of the keypoints: a pixel
    centre c maps to (c + 0.5) * s - 0.5, so the principal point does too and the focal lengths scale."""
    return np.array(
        [
            [intrinsics.fx * sx, 0.0, (intrinsics.cx + 0.5) * sx - 0.5],
            [0.0, intrinsics.fy * sy, (intrinsics.cy + 0.5) * sy - 0.5],
            [0.0, 0.0, 1.0],
        ]
    )


@dataclass
class _View:
    """One image of an item and the targets on its grid, before resizing."""

    image: np.ndarray  # (H, W, 3) BGR uint8, as decoded, or (H, W) float32 mm
    keypoints: np.ndarray  # (P, 17, 2) pixel-index coordinates of this image
    boxes: np.ndarray  # (P, 4) pixel-edge coordinates of this image
    interpolation: int
    intrinsics: Intrinsics | None


def _color_view(frame: dict, persons: dict, cameras: tuple[Intrinsics | None, Intrinsics | None]) -> _View:
    # BGR as decoded: the channels are swapped to RGB by the item's one copy into its buffer (`_image_array`),
    # which costs nothing more, where a cv2.cvtColor cost 0.19 ms a 640x480 frame
    image = decode_color(frame["color_path"], frame["frame_id"])
    return _View(image, persons["keypoints_2d"][..., :2], persons["box"], cv2.INTER_LINEAR, cameras[0])


def _depth_view(frame: dict, persons: dict, cameras: tuple[Intrinsics | None, Intrinsics | None]) -> _View:
    counts = decode_depth(frame["depth_path"], frame["frame_id"])
    image = counts.astype(np.float32) * np.float32(frame["depth_unit_mm"])  # millimetres
    # color boxes onto the depth grid, each axis by its own ratio (pixel-edge coordinates)
    (cw, ch), (dw, dh) = frame["color_size"], frame["depth_size"]
    boxes = scale_boxes(persons["box"], dw / cw, dh / ch)
    return _View(image, persons["depth_keypoints"], boxes, cv2.INTER_CUBIC, cameras[1])


def _render(view: _View, factor: float, spec: ItemSpec, depth: bool) -> dict:
    """The view at `factor` (brought back to full size with `spec.upsample`), as arrays with its targets."""
    image = view.image.astype(np.float32) if spec.image_dtype == "float32" or depth else view.image
    h, w = image.shape[:2]
    new_w, new_h = scaled_size(w, h, factor)
    full = image
    if (new_w, new_h) != (w, h):
        image = cv2.resize(np.ascontiguousarray(image), (new_w, new_h), interpolation=view.interpolation)
        if spec.upsample:  # the degraded image at the original size: the targets keep the original grid
            image = cv2.resize(image, (w, h), interpolation=view.interpolation)
            new_w, new_h = w, h
    sx, sy = new_w / w, new_h / h
    out = {
        "image": _image_array(image, spec, depth),
        "keypoints": scale_keypoints(view.keypoints, sx, sy),
        "boxes": scale_boxes(view.boxes, sx, sy),
    }
    if spec.keep_full:
        out["image_full"] = _image_array(full, spec, depth)
    if view.intrinsics is not None:
        out["intrinsics"] = scaled_intrinsics(view.intrinsics, sx, sy)
    return out


def _image_array(image: np.ndarray, spec: ItemSpec, depth: bool) -> np.ndarray:
    """Channels first and RGB (a decoded color image is BGR), as a view: the packing makes the item's one
    contiguous copy (a 640x480 float image is 3.7 MB; copying it twice cost the readers about 1 ms an item at
    factor 1)."""
    if depth:
        image = _normalise_depth(image, spec)
        if spec.image_dtype == "native":  # integers for normalising on the GPU
            image = np.clip(np.rint(image), 0, 65535).astype(np.uint8 if spec.depth_norm == "0_255" else np.uint16)
    return image[None] if image.ndim == 2 else image.transpose(2, 0, 1)[::-1]


# The dtype of each array an item holds (the images keep theirs: float32, or uint8/uint16 with "native").
_ITEM_DTYPES = {
    "boxes": np.dtype(np.float32),
    "scores": np.dtype(np.float32),
    "keypoints": np.dtype(np.float32),
    "hard_mask": np.dtype(np.bool_),
    "hard_valid": np.dtype(np.bool_),
    "pose3d_soft": np.dtype(np.float32),
    "pose3d_hard": np.dtype(np.float32),
    "pose3d_camera": np.dtype(np.float32),
    "pose3d_room_camera": np.dtype(np.float32),
    "pose3d_room_hard": np.dtype(np.bool_),
    "intrinsics": np.dtype(np.float32),
    "depth_flag": np.dtype(np.int8),
    "depth_keypoints": np.dtype(np.float32),
    "depth_boxes": np.dtype(np.float32),
    "depth_intrinsics": np.dtype(np.float32),
}


def make_item(
    frame: dict,
    persons: dict,
    factor: float,
    spec: ItemSpec,
    cameras: tuple[Intrinsics | None, Intrinsics | None] = (None, None),
) -> PackedItem:
    """One training item from a frame's row and its persons' rows (keys: docs/reading_labels.md).
    `cameras`: the intrinsics of the color image and of the depth grid (either None when unknown). Its
    tensors are contiguous views of one buffer (`orpose.label_store.packing`): one copy of each array, and
    one shared-memory segment when a DataLoader worker sends it."""
    keep = _kept_persons(persons, spec)
    every = bool(keep.all())  # the common case: no person dropped, nothing to index
    persons = {name: np.asarray(column) if every else np.asarray(column)[keep] for name, column in persons.items()}

    confidence = persons["keypoints_2d"][..., 2:]
    main = _color_view(frame, persons, cameras) if spec.modality != "depth" else _depth_view(frame, persons, cameras)
    rendered = _render(main, factor, spec, depth=spec.modality == "depth")
    item = {
        "image": rendered["image"],
        "frame_id": frame["frame_id"],
        "camera_id": frame["camera_id"],
        "factor": factor,
        "boxes": rendered["boxes"],
        "scores": persons["score"],
        "keypoints": np.concatenate([rendered["keypoints"], confidence], axis=-1),
        "hard_mask": persons["hard_mask"],
        "hard_valid": persons["hard_valid"],
        "pose3d_soft": persons["pose3d_soft"],
        "pose3d_hard": persons["pose3d_hard"],
        "pose3d_camera": persons["pose3d_camera"],
        "pose3d_room_camera": persons["pose3d_room_camera"],
        "pose3d_room_hard": persons["pose3d_room_hard"],
    }
    for key in ("image_full", "intrinsics"):
        if key in rendered:
            item[key] = rendered[key]
    if spec.modality in ("depth", "rgbd"):
        item["depth_flag"] = persons["depth_flag"]
    if spec.modality == "rgbd":  # the depth image at the same factor, with its own targets
        depth = _render(_depth_view(frame, persons, cameras), factor, spec, depth=True)
        item["depth"] = depth["image"]
        item["depth_keypoints"] = np.concatenate([depth["keypoints"], confidence], axis=-1)
        item["depth_boxes"] = depth["boxes"]
        for key, name in (("image_full", "depth_full"), ("intrinsics", "depth_intrinsics")):
            if key in depth:
                item[name] = depth[key]
    return pack(item, _ITEM_DTYPES)


class RunSource:
    """A run (or one shard file) as its index plus shard files opened on demand, at most `max_open` at a time,
    in the process that reads them: h5py handles never cross a fork, and the object pickles (for DataLoader
    workers started with spawn or forkserver) without them."""

    def __init__(self, run: LabelRun | str | Path, max_open: int = 8):
        path = Path(run.path if isinstance(run, LabelRun) else run)
        self.path, self.max_open = path, max_open
        if path.is_file():  # a single shard
            self.index = shard_run_index(path)
        else:
            if not (path / "manifest").is_dir():
                raise FileNotFoundError(f"{path}: neither a shard file nor a run directory with a manifest/")
            self.index = load_index(path)
        calibration = (path.parent.parent if path.is_file() else path) / "calibration.json"
        # the run's cameras (written by `labels run`): each item's intrinsics; None for runs without it
        self.cameras = load_calibration(calibration) if calibration.exists() else None
        self._handles: dict[int, h5py.File] = {}
        self._pid: int | None = None

    def cameras_of(self, camera_id: str) -> tuple[Intrinsics | None, Intrinsics | None]:
        """(the color camera's intrinsics, the depth grid's) of a camera; (None, None) when the run has none."""
        camera = self.cameras.get(camera_id) if self.cameras else None
        return (camera.color, camera.depth_grid) if camera is not None else (None, None)

    def shard_path(self, shard: int) -> Path:
        return self.path if self.path.is_file() else shard_path(self.path, shard)

    def handle(self, shard: int) -> h5py.File:
        if self._pid != os.getpid():  # a forked copy: the parent's handles are not ours to use
            self._handles, self._pid = {}, os.getpid()
        handle = self._handles.pop(shard, None)
        if handle is None:
            if len(self._handles) >= self.max_open:
                oldest = next(iter(self._handles))
                self._handles.pop(oldest).close()
            handle = h5py.File(self.shard_path(shard), "r")
        self._handles[shard] = handle  # most recently used last
        return handle

    def read_frame(self, position: int, modality: str) -> tuple[dict, dict]:
        """The item's columns of one frame: its row of each frame column, its persons' rows."""
        handle = self.handle(int(self.index.shard[position]))
        row = int(self.index.row[position])
        frames, persons = handle["frames"], handle["persons"]
        lo, hi = (int(v) for v in frames["person_offset"][row : row + 2])
        frame = {name: _value(frames[name], row) for name in frame_columns(modality)}
        return frame, {
            name: persons[name][lo:hi] if name in persons else filled(_PERSON_FIELD[name], hi - lo)
            for name in person_columns(modality)
        }

    def read_shard(self, shard: int, modality: str) -> tuple[dict, dict, np.ndarray]:
        """The item's columns of a whole shard, one read per column."""
        handle = self.handle(shard)
        frames, persons = handle["frames"], handle["persons"]
        offsets = read_dataset(frames["person_offset"])
        return (
            {name: read_dataset(frames[name]) for name in frame_columns(modality)},
            {name: read_field(persons, _PERSON_FIELD[name], int(offsets[-1])) for name in person_columns(modality)},
            offsets,
        )

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handles": {}, "_pid": None}


def _value(dataset: h5py.Dataset, row: int) -> object:
    value = dataset[row]
    return value.decode() if isinstance(value, bytes) else value


class ItemReader:
    """What `PoseLabelDataset` and `PoseLabelStream` share: the run, the item settings, the epoch, which
    frames are training items (`eligible`, a mask over the run index), and making one item of a frame."""

    def _open(
        self,
        run: LabelRun | str | Path,
        modality: str,
        factor: float | str,
        seed: int,
        spec: ItemSpec,
        transform: Callable[[dict], dict] | None,
    ) -> None:
        check_factor(factor)
        self.spec, self.source = spec, RunSource(run)
        self.modality, self.factor, self.seed, self.epoch, self.transform = modality, factor, seed, 0, transform
        self.eligible = eligible_frames(self.source.index, modality)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _make(self, position: int, frame: dict, persons: dict) -> dict:
        """The item of the frame at `position` in the run index, from its rows: transformed, then packed."""
        factor = item_factor(self.factor, self.seed, self.epoch, position)
        item = make_item(frame, persons, factor, self.spec, self.source.cameras_of(frame["camera_id"]))
        return pack_item(self.transform(item)) if self.transform else item


class PoseLabelDataset(ItemReader, Dataset):
    """Map-style: the DataLoader's sampler shuffles exactly; each item reads its own frame's rows. Items and
    arguments: docs/reading_labels.md (the same as `PoseLabelStream`'s). Holds the run index's arrays only
    (no Python object per frame), opens shards lazily in each worker, pickles for spawn. Call
    `set_epoch(epoch)` each epoch: `factor="random"` then draws anew. `transform(item) -> item` sees the
    image and every target together (`orpose.label_store.transforms`)."""

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
    ):
        spec = ItemSpec(modality, depth_range_mm, depth_norm, image_dtype, label_set, min_score, keep_full, upsample)
        self._open(run, modality, factor, seed, spec, transform)
        self.positions = np.flatnonzero(self.eligible)  # positions in the run index of the training items

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def frame_ids(self) -> list[str]:
        return [self.source.index.frame_id_at(int(p)) for p in self.positions]

    def __getitem__(self, index: int) -> dict:
        position = int(self.positions[index])
        return self._make(position, *self.source.read_frame(position, self.modality))


def eligible_frames(index: RunIndex, modality: str) -> np.ndarray:
    """Mask of the run index's training frames: labelled, and with a depth image for depth items."""
    eligible = index.status == STATUS_LABELLED
    return eligible & index.has_depth if modality in ("depth", "rgbd") else eligible
