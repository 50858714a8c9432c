"""The cameras of an MVOR-format annotation file: per-camera calibrations and the multi-view rig.

MVOR (Srivastav et al., "MVOR: A Multi-view RGB-D Operating Room Dataset for 2D and 3D Human Pose
Estimation", MICCAI-LABELS 2018) keeps one calibration for all its days in `cameras_info`::

    {"camParams": {"intrinsics": [{"serialnumber", "focallength": [fx, fy],
                                   "principalpoint": [cx, cy], "distortion": [5 numbers],
                                   "skew_value", "imagesize": [w, h]}, ...],
                   "ids": [serial, ...],              # same order as intrinsics and extrinsics
                   "extrinsics": [[16 numbers], ...],   # row-major 4x4: camera -> camera 1, mm
                   "firstCamToRoomRef": [16 numbers]},  # camera 1 -> room, mm
     "date_identifier": ...}

and `dataset_info.camid_2_num` maps a serial to the N of `camN` in file names. Camera ids here are
`camN`. An intrinsics entry may also carry `depth_unit_mm` (this project's extension; MVOR's has
none, its unit comes from the user).

Measured on the real file (2196 images, 1061 3D poses; `tests/frames/test_mvor.py`):
- `inv(extrinsics[v])` moves camera 1's frame into camera v: the 3D poses, in camera 1's frame
  whatever their `ref_camera`, then reproject onto the 2D annotations with a median error of
  8.1 px (7.7 / 8.9 / 7.9 px in cameras 1 / 2 / 3).
- The 5 distortion numbers are (k1, k2, k3, p1, p2): read in OpenCV's order (k1, k2, p1, p2, k3)
  they reproject with a median error of 366 px; read as (k1, k2, k3, p1, p2) 8.9 px; without
  distortion 8.1 px. The annotations follow a pinhole model, as the MVOR authors' viewer does,
  so the intrinsics carry no distortion unless `distortion=True` asks for the file's coefficients
  (then in OpenCV's order, as `Intrinsics` keeps them).

Older layouts are read too, without extrinsics: one block per camera `{"camM": CAM}` or per day
`{"dayN": {"camM": CAM}}` (keys `dayN/camM`), optionally under `camParams`; CAM has
`focallength`, `principalpoint`, `distortion` (OpenCV order), `image_size` and `depth_unit_mm`.

Not for: listing frames (see `frames.sources.MvorTreeSource`) or ground truth (see
`evaluation.mvor`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from orpose.frames.calibration import (
    CameraCalibration,
    Intrinsics,
    MultiViewRig,
    parse_camera,
    parse_intrinsics,
    parse_rigid_transform,
    read_json,
)
from orpose.frames.errors import CalibrationError

__all__ = ["read_mvor_calibrations", "read_mvor_rig", "mvor_distortion_to_opencv", "MVOR_DEFAULT_SIZE"]

MVOR_DEFAULT_SIZE = (640, 480)  # MVOR's image size, for files whose camera blocks do not give it
_LEGACY_FIELDS = {"focallength", "principalpoint", "distortion", "image_size", "depth_unit_mm"}


def mvor_distortion_to_opencv(coefficients: list[float]) -> list[float]:
    """MVOR's (k1, k2, k3, p1, p2) -> OpenCV's (k1, k2, p1, p2, k3)."""
    k1, k2, k3, p1, p2 = coefficients
    return [k1, k2, p1, p2, k3]


def _pair(block: Mapping[str, Any], key: str, where: str, source: str) -> tuple[float, float]:
    value = block.get(key)
    if value is None:
        raise CalibrationError(source, f"{where}.{key}", "missing")
    try:
        first, second = (float(v) for v in value)
    except (TypeError, ValueError):
        raise CalibrationError(source, f"{where}.{key}", f"expected two numbers, got {value!r}") from None
    return first, second


def _intrinsics(block: Any, where: str, source: str, size_key: str, distortion: list[float]) -> Intrinsics:
    if not isinstance(block, Mapping):
        raise CalibrationError(source, where, f"expected an object, got {type(block).__name__}")
    fx, fy = _pair(block, "focallength", where, source)
    cx, cy = _pair(block, "principalpoint", where, source)
    width, height = _pair(block, size_key, where, source) if size_key in block else MVOR_DEFAULT_SIZE
    if width != int(width) or height != int(height):
        raise CalibrationError(source, f"{where}.{size_key}", f"expected whole pixels, got {[width, height]}")
    color = {
        "width": int(width),
        "height": int(height),
        "fx": fx,
        "fy": fy,
        "cx": cx,
        "cy": cy,
        "distortion": distortion,
    }
    return parse_intrinsics(color, where, source)


def _distortion(block: Mapping[str, Any], where: str, source: str, length: int | None) -> list[float]:
    value = block.get("distortion", []) or []
    if not isinstance(value, list) or (length is not None and len(value) != length):
        expected = f"a list of {length} numbers" if length else "a list of numbers"
        raise CalibrationError(source, f"{where}.distortion", f"expected {expected}, got {value!r}")
    try:
        return [float(v) for v in value]
    except (TypeError, ValueError):
        raise CalibrationError(source, f"{where}.distortion", f"expected numbers, got {value!r}") from None


def _rig_matrix(value: Any, where: str, source: str) -> np.ndarray:
    """A row-major list of 16 numbers as a validated 4x4 rigid transform."""
    if not isinstance(value, list) or len(value) != 16:
        raise CalibrationError(source, where, f"expected 16 numbers (a row-major 4x4), got {value!r:.80}")
    return parse_rigid_transform(np.asarray(value, dtype=np.float64).reshape(4, 4), where, source)


class _Cameras:
    """What one `cameras_info` block says: intrinsics and depth unit per camera id, and the rig."""

    def __init__(self, document: Any, source: str, distortion: bool):
        info = document.get("cameras_info") if isinstance(document, dict) else None
        if not isinstance(info, dict) or not info:
            raise CalibrationError(source, "cameras_info", "missing or empty")
        self.source = source
        self.intrinsics: dict[str, Intrinsics] = {}
        self.depth_units: dict[str, float | None] = {}
        self.camera_to_reference: dict[str, np.ndarray] | None = None
        self.reference: str | None = None
        self.reference_to_room: np.ndarray | None = None
        params = info.get("camParams", info)
        if isinstance(params, dict) and isinstance(params.get("intrinsics"), list):
            self._read_mvor(params, document, distortion)
        else:
            self._read_legacy(params, "cameras_info.camParams" if "camParams" in info else "cameras_info")

    def _read_mvor(self, params: Mapping[str, Any], document: Mapping[str, Any], distortion: bool) -> None:
        where = "cameras_info.camParams"
        intrinsics, ids, extrinsics = params["intrinsics"], params.get("ids"), params.get("extrinsics")
        for key, value in (("ids", ids), ("extrinsics", extrinsics)):
            if not isinstance(value, list) or len(value) != len(intrinsics):
                raise CalibrationError(
                    self.source,
                    f"{where}.{key}",
                    f"expected a list of {len(intrinsics)} entries, one per intrinsics entry",
                )
        numbers = (document.get("dataset_info") or {}).get("camid_2_num")
        if not isinstance(numbers, dict):
            raise CalibrationError(
                self.source, "dataset_info.camid_2_num", "missing: maps each camera serial to N of camN"
            )
        self.camera_to_reference = {}
        for index, (block, serial, matrix) in enumerate(zip(intrinsics, ids, extrinsics)):
            here = f"{where}.intrinsics[{index}]"
            if str(serial) not in numbers:
                raise CalibrationError(
                    self.source, "dataset_info.camid_2_num", f"has no camera number for serial {serial!r}"
                )
            if (
                isinstance(block, Mapping)
                and "serialnumber" in block
                and not str(block["serialnumber"]).endswith(str(serial))
            ):
                raise CalibrationError(
                    self.source,
                    f"{here}.serialnumber",
                    f"{block['serialnumber']!r} is not camera {serial!r} of {where}.ids[{index}]",
                )
            camera_id = f"cam{int(numbers[str(serial)])}"
            coefficients = _distortion(block, here, self.source, 5) if isinstance(block, Mapping) else []
            opencv = mvor_distortion_to_opencv(coefficients) if distortion and coefficients else []
            self.intrinsics[camera_id] = _intrinsics(block, here, self.source, "imagesize", opencv)
            self.depth_units[camera_id] = block.get("depth_unit_mm")
            self.camera_to_reference[camera_id] = _rig_matrix(matrix, f"{where}.extrinsics[{index}]", self.source)
        identities = [c for c, m in self.camera_to_reference.items() if np.allclose(m, np.eye(4), atol=1e-9)]
        if not identities:
            raise CalibrationError(
                self.source, f"{where}.extrinsics", "no entry is the identity: none names the reference camera"
            )
        self.reference = identities[0]
        room = params.get("firstCamToRoomRef")
        if room is not None:
            self.reference_to_room = _rig_matrix(room, f"{where}.firstCamToRoomRef", self.source)

    def _read_legacy(self, params: Any, where: str) -> None:
        if not isinstance(params, dict):
            raise CalibrationError(self.source, where, f"expected an object, got {type(params).__name__}")
        blocks: list[tuple[str, str, Any]] = []
        for key, block in params.items():
            if isinstance(block, dict) and "focallength" not in block:  # a day: {"camM": CAM}
                blocks += [(f"{key}/{cam}", f"{where}.{key}.{cam}", cam_block) for cam, cam_block in block.items()]
            else:
                blocks.append((key, f"{where}.{key}", block))
        for camera_id, here, block in blocks:
            if not isinstance(block, dict):
                raise CalibrationError(self.source, here, f"expected an object, got {type(block).__name__}")
            unknown = sorted(set(block) - _LEGACY_FIELDS - {"extrinsics", "world_to_camera"})
            if unknown:
                raise CalibrationError(
                    self.source, f"{here}.{unknown[0]}", f"unknown field (known: {sorted(_LEGACY_FIELDS)})"
                )
            self.intrinsics[camera_id] = _intrinsics(
                block, here, self.source, "image_size", _distortion(block, here, self.source, None)
            )
            self.depth_units[camera_id] = block.get("depth_unit_mm")


def read_mvor_calibrations(
    annotation: str | Path, depth_unit_mm: float | None = None, *, distortion: bool = False
) -> dict[str, CameraCalibration]:
    """Registered RGB-D calibrations by camera id (`camN`, or `dayN/camM` for per-day files), each with its pose in
    the room where the file has the cameras' extrinsics (`rig_from_calibration` then gives the rig).

    The depth unit is the file's where it gives one, else `depth_unit_mm`; without either a
    CalibrationError asks for it (MVOR's own file has none: its sensors write millimetres).
    """
    source = str(annotation)
    cameras = _Cameras(read_json(annotation), source, distortion)
    calibrations = {}
    for camera_id, intr in cameras.intrinsics.items():
        unit = cameras.depth_units[camera_id] if cameras.depth_units[camera_id] is not None else depth_unit_mm
        if unit is None:
            raise CalibrationError(
                source,
                f"cameras_info ({camera_id}).depth_unit_mm",
                "the MVOR file has no depth unit: pass depth_unit_mm (millimetres per depth count; "
                "MVOR's sensors write 1.0)",
            )
        color = {
            "width": intr.width,
            "height": intr.height,
            "fx": intr.fx,
            "fy": intr.fy,
            "cx": intr.cx,
            "cy": intr.cy,
            "distortion": list(intr.distortion),
        }
        block = {"color": color, "depth": None, "registered": True, "depth_unit_mm": unit}
        if cameras.camera_to_reference is not None:
            # the camera's pose in the room (MVOR's firstCamToRoomRef after its extrinsics; without the room
            # transform the reference camera's frame is the room)
            room = cameras.reference_to_room if cameras.reference_to_room is not None else np.eye(4)
            block["camera_to_room"] = (room @ cameras.camera_to_reference[camera_id]).tolist()
        calibrations[camera_id] = parse_camera(camera_id, block, source)
    return calibrations


def read_mvor_rig(annotation: str | Path | Mapping[str, Any], *, distortion: bool = False) -> MultiViewRig:
    """The multi-view rig of an MVOR-format file (a path, or its already-loaded content).

    Needs the real MVOR layout (`camParams` with `extrinsics`); older layouts have no extrinsics.
    """
    if isinstance(annotation, Mapping):
        document, source = annotation, "<annotation>"
    else:
        document, source = read_json(annotation), str(annotation)
    cameras = _Cameras(document, source, distortion)
    if cameras.camera_to_reference is None:
        raise CalibrationError(
            source,
            "cameras_info.camParams.extrinsics",
            "missing: this layout has no camera poses, so 3D cannot move between cameras",
        )
    return MultiViewRig(
        intrinsics=cameras.intrinsics,
        camera_to_reference=cameras.camera_to_reference,
        reference=cameras.reference,
        reference_to_room=cameras.reference_to_room,
    )
