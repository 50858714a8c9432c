"""Frame sources: where the frames of a labelling run come from.

A source lists `FrameRef`s (cheap: paths and ids, no pixels) in a stable order, and loads one
`Frame` at a time with strict decoding. Listing problems that make the whole source unusable
(an unreadable manifest, a duplicate frame id, an unknown camera) raise `SourceError` at once;
problems of one frame raise a `FrameError` from `load`, so the caller rejects that frame and
labels its neighbours.

Two sources:
- `ManifestSource`: a JSON-lines or CSV manifest plus a calibration file.
- `MvorTreeSource`: an MVOR-style tree `dayN/camM/{color,depth}/NNNNNN.png` whose calibration
  comes from the `cameras_info` block of an MVOR-format annotation file (see `frames.mvor`).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from orpose.frames.calibration import CameraCalibration, load_calibration
from orpose.frames.decode import decode_color, decode_depth_bytes, max_file_bytes, read_image_bytes
from orpose.frames.errors import FrameError, MissingDepthPairError, SourceError
from orpose.frames.files import sha256_file
from orpose.frames.mvor import read_mvor_calibrations

__all__ = [
    "REF_COLUMNS",
    "INSTANT_KEY",
    "ref_batch",
    "refs_from_batch",
    "Frame",
    "FrameRef",
    "FrameSource",
    "ManifestSource",
    "MvorTreeSource",
    "open_source",
    "load_frame",
]


@dataclass(frozen=True)
class FrameRef:
    """What a source knows about a frame before decoding it."""

    frame_id: str  # stable across runs of the same source; runs resume by it
    camera_id: str  # key into the source's calibrations
    color_path: str  # absolute path of the color image
    depth_path: str | None  # absolute path of the depth image, None for color-only frames
    timestamp: float | None = None  # seconds, when the source knows it
    # the moment the frame belongs to, shared by the frames of the other cameras taken with it (a manifest's
    # `instant`, an MVOR tree's day and frame number); None: instants come from the timestamps (fusion.instants)
    instant_key: str | None = None


@dataclass
class Frame:
    """A decoded, validated frame."""

    ref: FrameRef
    color_bgr: np.ndarray  # (H, W, 3) uint8, BGR as OpenCV and mmdet expect
    depth_raw: np.ndarray | None  # (h, w) uint16 depth counts, 0 = no reading; None = color-only
    calibration: CameraCalibration
    # The depth image's file bytes, validated: a PNG is ~1/10 of the decoded counts, so the
    # pipeline carries these from stage to stage and decodes them where depth is used.
    depth_encoded: bytes | None = None

    @property
    def frame_id(self) -> str:
        return self.ref.frame_id

    @property
    def camera_id(self) -> str:
        return self.ref.camera_id

    def depth_mm(self) -> np.ndarray | None:
        """Depth in millimetres (float32, 0 where the sensor had no reading)."""
        return depth_counts_to_mm(self.depth_raw, self.calibration.depth_unit_mm)


def depth_counts_to_mm(depth_raw: np.ndarray | None, depth_unit_mm: float) -> np.ndarray | None:
    """A depth image's sensor counts (uint16) in millimetres (float32); None stays None."""
    if depth_raw is None:
        return None
    return depth_raw.astype(np.float32) * np.float32(depth_unit_mm)


def load_frame(ref: FrameRef, calibration: CameraCalibration) -> Frame:
    """Decode and validate one frame against its camera's calibration (strict; see frames.decode)."""
    color = decode_color(ref.color_path, ref.frame_id, calibration.color)
    depth = depth_encoded = None
    if calibration.has_depth:
        if ref.depth_path is None:
            raise MissingDepthPairError(
                ref.frame_id, ref.color_path, f"camera {ref.camera_id!r} promises depth but the frame has no depth path"
            )
        if not Path(ref.depth_path).exists():
            raise MissingDepthPairError(ref.frame_id, ref.depth_path, "the depth image of this color frame is missing")
        depth_encoded = read_image_bytes(ref.depth_path, ref.frame_id, max_file_bytes(calibration.depth_grid, 1, 2))
        depth = decode_depth_bytes(depth_encoded, ref.depth_path, ref.frame_id, calibration.depth_grid)
    return Frame(ref=ref, color_bgr=color, depth_raw=depth, calibration=calibration, depth_encoded=depth_encoded)


# Columns of a batch of refs (`FrameSource.iter_ref_batches`): plain lists, what a plan stores per frame.
# No depth is '' and no timestamp is NaN, so that every column has one type. A batch may also hold INSTANT_KEY
# (strings, '' for none): what multi-view planning groups instants by, when the source names them.
REF_COLUMNS = ("frame_id", "camera_id", "color_path", "depth_path", "timestamp")
INSTANT_KEY = "instant_key"


def ref_batch(refs: list[FrameRef]) -> dict[str, list]:
    """FrameRefs -> one batch of ref columns (REF_COLUMNS)."""
    return {
        "frame_id": [r.frame_id for r in refs],
        "camera_id": [r.camera_id for r in refs],
        "color_path": [r.color_path for r in refs],
        "depth_path": [r.depth_path or "" for r in refs],
        "timestamp": [float("nan") if r.timestamp is None else r.timestamp for r in refs],
        INSTANT_KEY: [r.instant_key or "" for r in refs],
    }


def refs_from_batch(batch: dict[str, list]) -> list[FrameRef]:
    """One batch of ref columns (REF_COLUMNS) -> FrameRefs: the inverse of `ref_batch`."""
    keys = batch.get(INSTANT_KEY) or [""] * len(batch["frame_id"])
    return [
        FrameRef(frame_id, camera, color, depth or None, None if timestamp != timestamp else timestamp, key or None)
        for frame_id, camera, color, depth, timestamp, key in zip(*(batch[c] for c in REF_COLUMNS), keys)
    ]


class FrameSource(ABC):
    """A list of frames and their calibrations."""

    @abstractmethod
    def refs(self) -> list[FrameRef]:
        """All frames, in a stable order, with unique ids."""

    @abstractmethod
    def calibrations(self) -> Mapping[str, CameraCalibration]:
        """Calibration per camera id."""

    def iter_ref_batches(self, size: int = 65536) -> Iterator[dict[str, list]]:
        """All frames in order as batches of REF_COLUMNS, without holding them all: what planning reads.
        Ids are not checked for uniqueness here (that needs every id; the plan writer checks them)."""
        refs = self.refs()
        for start in range(0, len(refs), size):
            yield ref_batch(refs[start : start + size])

    def fingerprint(self) -> str | None:
        """A digest that changes when the listing can change (None: unknown, the listing must be compared)."""
        return None

    def load(self, ref: FrameRef) -> Frame:
        """Decode and validate one frame; raises a `FrameError` subclass naming frame and file."""
        return load_frame(ref, self.calibrations()[ref.camera_id])

    def iter_frames(self) -> Iterator[tuple[FrameRef, Frame | FrameError]]:
        """Every frame in order, decoded, or the error that rejected it."""
        for ref in self.refs():
            try:
                yield ref, self.load(ref)
            except FrameError as error:
                yield ref, error


def _check_unique(refs: list[FrameRef], source: Path) -> None:
    seen: dict[str, str] = {}
    for ref in refs:
        if ref.frame_id in seen:
            raise SourceError(
                source, f"frame id {ref.frame_id!r} appears twice ({seen[ref.frame_id]} and {ref.color_path})"
            )
        seen[ref.frame_id] = ref.color_path


class ManifestSource(FrameSource):
    """Frames listed in a manifest: JSON lines (`.jsonl`) or CSV (`.csv`) with a header.

    Fields per frame: `color` (required), `depth`, `camera` (required when the calibration has
    more than one camera), `frame_id` (default: the color path without extension, relative to the
    manifest), `timestamp`, `instant` (the frames of several cameras taken at one moment share it: multi-view
    fusion groups them by it instead of by timestamp). Relative paths are relative to the manifest's folder.
    """

    FIELDS = ("frame_id", "color", "depth", "camera", "timestamp", "instant")

    def __init__(self, manifest: str | Path, calibration: str | Path | None = None):
        self.manifest = Path(manifest)
        calibration = Path(calibration) if calibration else self.manifest.parent / "calibration.json"
        self.calibration_path = calibration
        self._calibrations = load_calibration(calibration)
        if not self.manifest.is_file():
            raise SourceError(self.manifest, "manifest not found")
        if self.manifest.suffix.lower() not in (".jsonl", ".ndjson", ".csv"):
            raise SourceError(self.manifest, f"unknown manifest type {self.manifest.suffix!r}: use .jsonl or .csv")
        self._refs: list[FrameRef] | None = None  # listed on first use: a manifest can hold millions of frames

    def calibrations(self) -> Mapping[str, CameraCalibration]:
        return self._calibrations

    def refs(self) -> list[FrameRef]:
        if self._refs is None:
            refs = [ref for batch in self.iter_ref_batches() for ref in refs_from_batch(batch)]
            _check_unique(refs, self.manifest)
            self._refs = refs
        return list(self._refs)

    def fingerprint(self) -> str:
        """sha256 of the manifest and the calibration file: the listing is a function of these two files."""
        return f"{sha256_file(self.manifest)}+{sha256_file(self.calibration_path)}"

    def _rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """(line number, row) one at a time, the file read as a stream."""
        suffix = self.manifest.suffix.lower()
        with open(self.manifest, newline="" if suffix == ".csv" else None, encoding="utf-8") as handle:
            if suffix == ".csv":
                for number, row in enumerate(csv.DictReader(handle), start=2):
                    yield number, {k: (v if v != "" else None) for k, v in row.items() if k is not None}
                return
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    raise SourceError(self.manifest, f"not valid JSON: {error.msg}", line=number) from None
                if not isinstance(row, dict):
                    raise SourceError(self.manifest, "each line must be a JSON object", line=number)
                yield number, row

    def iter_ref_batches(self, size: int = 65536) -> Iterator[dict[str, list]]:
        """The manifest's frames as batches of REF_COLUMNS, each row checked (errors name the line).
        Paths are joined to the manifest's folder without touching the file system (millions of rows)."""
        base = os.path.abspath(self.manifest.parent)
        cameras = list(self._calibrations)
        known_fields = set(self.FIELDS)
        batch: dict[str, list] = {c: [] for c in (*REF_COLUMNS, INSTANT_KEY)}
        listed = 0
        for number, row in self._rows():
            if not known_fields.issuperset(row):
                unknown = sorted(set(row) - known_fields)
                raise SourceError(
                    self.manifest, f"unknown field {unknown[0]!r} (known: {list(self.FIELDS)})", line=number
                )
            color = row.get("color")
            if not color:
                raise SourceError(self.manifest, "field 'color' is missing", line=number)
            instant = row.get("instant")
            if instant is not None and (isinstance(instant, bool) or not isinstance(instant, (str, int))):
                raise SourceError(
                    self.manifest, f"field 'instant': a string or an integer is needed, not {instant!r}", line=number
                )
            for field in ("color", "depth", "frame_id", "camera"):  # paths and names: strings, never 7 or a list
                if row.get(field) is not None and not isinstance(row[field], str):
                    raise SourceError(
                        self.manifest, f"field {field!r}: a string is needed, not {row[field]!r}", line=number
                    )
            camera = row.get("camera")
            if camera is None:
                if len(cameras) != 1:
                    raise SourceError(
                        self.manifest, f"field 'camera' is needed: the calibration has cameras {cameras}", line=number
                    )
                camera = cameras[0]
            camera = str(camera)
            if camera not in self._calibrations:
                raise SourceError(
                    self.manifest, f"camera {camera!r} is not in {self.calibration_path} (has {cameras})", line=number
                )
            timestamp = row.get("timestamp")
            if timestamp is None:
                timestamp = float("nan")
            else:
                try:
                    timestamp = float(timestamp)
                except (TypeError, ValueError):
                    raise SourceError(
                        self.manifest, f"field 'timestamp': not a number: {timestamp!r}", line=number
                    ) from None
                if not np.isfinite(timestamp):  # NaN stands for 'unknown' in the shards: never given, never inf
                    raise SourceError(
                        self.manifest, f"field 'timestamp': must be finite, got {timestamp!r}", line=number
                    )
            frame_id = row.get("frame_id") or Path(color).with_suffix("").as_posix()
            depth = row.get("depth")
            batch["frame_id"].append(str(frame_id))
            batch["camera_id"].append(camera)
            batch["color_path"].append(os.path.normpath(os.path.join(base, color)))
            batch["depth_path"].append(os.path.normpath(os.path.join(base, depth)) if depth else "")
            batch["timestamp"].append(timestamp)
            batch[INSTANT_KEY].append("" if instant is None else str(instant))
            if len(batch["frame_id"]) == size:
                listed += size
                yield batch
                batch = {c: [] for c in (*REF_COLUMNS, INSTANT_KEY)}
        if batch["frame_id"]:
            yield batch
        elif not listed:
            raise SourceError(self.manifest, "the manifest lists no frames")


_MVOR_DIR = re.compile(r"^day\d+$")
_MVOR_CAM = re.compile(r"^cam\d+$")


class MvorTreeSource(FrameSource):
    """An MVOR-style tree: `ROOT/dayN/camM/color/NNNNNN.png` with `.../depth/NNNNNN.png` beside.

    Frame ids are `dayN/camM/NNNNNN`. Color and depth are registered; every color frame promises
    its depth pair. The frames of one day with one frame number are one instant (`instant_key` dayN/NNNNNN:
    MVOR's three views of a moment share the number). The calibration of `dayN/camM` is the annotation's
    `dayN/camM` entry, or its `camM` entry when the file has one calibration for all days (MVOR's own layout).
    """

    def __init__(self, root: str | Path, annotation: str | Path, depth_unit_mm: float | None = None):
        self.root = Path(root)
        self.annotation = Path(annotation)
        by_key = read_mvor_calibrations(annotation, depth_unit_mm)
        self._refs, self._calibrations = self._scan(by_key)

    def calibrations(self) -> Mapping[str, CameraCalibration]:
        return self._calibrations

    def refs(self) -> list[FrameRef]:
        return list(self._refs)

    def _scan(self, by_key: Mapping[str, CameraCalibration]) -> tuple[list[FrameRef], dict[str, CameraCalibration]]:
        if not self.root.is_dir():
            raise SourceError(self.root, "frame tree not found (expected dayN/camM/color/*.png under it)")
        refs: list[FrameRef] = []
        calibrations: dict[str, CameraCalibration] = {}
        for day_dir in sorted(p for p in self.root.iterdir() if p.is_dir() and _MVOR_DIR.match(p.name)):
            for cam_dir in sorted(p for p in day_dir.iterdir() if p.is_dir() and _MVOR_CAM.match(p.name)):
                camera_id = f"{day_dir.name}/{cam_dir.name}"
                calibration = by_key.get(camera_id) or by_key.get(cam_dir.name)
                if calibration is None:
                    raise SourceError(
                        self.annotation, f"cameras_info has no entry for {camera_id} (has {sorted(by_key)})"
                    )
                calibrations[camera_id] = dataclasses.replace(calibration, camera_id=camera_id)
                color_files = sorted(
                    p for p in (cam_dir / "color").glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg")
                )
                for color_path in color_files:
                    refs.append(
                        FrameRef(
                            frame_id=f"{camera_id}/{color_path.stem}",
                            camera_id=camera_id,
                            color_path=str(color_path.resolve()),
                            depth_path=str((cam_dir / "depth" / f"{color_path.stem}.png").resolve()),
                            instant_key=f"{day_dir.name}/{color_path.stem}",
                        )
                    )
        if not refs:
            raise SourceError(self.root, "no color frames found under dayN/camM/color/")
        _check_unique(refs, self.root)
        return refs, calibrations


def open_source(
    path: str | Path,
    *,
    calibration: str | Path | None = None,
    annotation: str | Path | None = None,
    depth_unit_mm: float | None = None,
) -> FrameSource:
    """A manifest file gives a `ManifestSource`; a folder gives an `MvorTreeSource`.

    For a folder the annotation file defaults to the only `*.json` in it with a `cameras_info`.
    """
    path = Path(path)
    if path.is_file():
        return ManifestSource(path, calibration)
    if path.is_dir():
        if annotation is None:
            candidates = [p for p in sorted(path.glob("*.json")) if '"cameras_info"' in p.read_text()]
            if len(candidates) != 1:
                raise SourceError(
                    path, f"pass the MVOR annotation file: found {len(candidates)} candidates with cameras_info"
                )
            annotation = candidates[0]
        return MvorTreeSource(path, annotation, depth_unit_mm)
    raise SourceError(path, "neither a manifest file nor a frame folder")
