"""Camera calibration: typed, validated on load, written back losslessly.

A rig is one color camera and, optionally, one depth camera. The depth camera is either
*registered* (its image lies on the color pixel grid, possibly at another resolution) or
*calibrated* (its own intrinsics and a rigid depth-to-color transform). The depth unit is
calibration data: millimetres per depth count, never a constant in code.

File format (JSON, see docs/frame_sources.md, "Calibration file")::

    {"format": "or-pose-labels/calibration", "version": 1,
     "cameras": {"cam1": {"color": {"width": 640, "height": 480, "fx": 538.0, "fy": 538.0,
                                    "cx": 319.5, "cy": 239.5, "distortion": []},
                          "depth": null, "registered": true, "depth_to_color": null,
                          "depth_unit_mm": 1.0,
                          "camera_to_room": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}}}

`camera_to_room` (optional) places the color camera in the room: with it on every camera, the file is a
multi-view rig (`rig_from_calibration`) and 3D moves between cameras and into the room.

Not for: reading images (see `frames.decode`) or projecting points (see `frames.geometry`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from orpose.frames import durable
from orpose.frames.errors import CalibrationError
from orpose.frames.geometry import apply_rigid, invert_rigid

__all__ = [
    "Intrinsics",
    "CameraCalibration",
    "MultiViewRig",
    "camera_poses",
    "rig_from_calibration",
    "load_calibration",
    "save_calibration",
    "calibration_to_dict",
    "parse_camera",
    "read_json",
    "CALIBRATION_FORMAT",
]

CALIBRATION_FORMAT = "or-pose-labels/calibration"
_DISTORTION_LENGTHS = (0, 4, 5, 8, 12, 14)  # the coefficient counts OpenCV accepts


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of one image grid; pixel centres sit at integer coordinates (OpenCV)."""

    width: int  # image width in pixels
    height: int  # image height in pixels
    fx: float  # focal length along x, pixels
    fy: float  # focal length along y, pixels
    cx: float  # principal point x, pixels
    cy: float  # principal point y, pixels
    distortion: tuple[float, ...] = ()  # OpenCV order (k1, k2, p1, p2[, k3, ...]); () = none

    def matrix(self) -> np.ndarray:
        """The 3x3 camera matrix K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], dtype=np.float64)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), the order OpenCV uses."""
        return self.width, self.height


@dataclass(frozen=True)
class CameraCalibration:
    """One rig: a color camera and its depth camera, if any."""

    camera_id: str  # the name frames refer to
    color: Intrinsics  # the color camera
    depth: Intrinsics | None  # the depth camera's own grid; None = color-only, or registered at the color size
    registered: bool  # depth already lies on the color pixel grid (scaled if the sizes differ)
    depth_to_color: np.ndarray | None = field(default=None, compare=False)  # 4x4, mm; calibrated rigs only
    depth_unit_mm: float = 1.0  # millimetres per depth count
    # 4x4, mm: the color camera's frame -> the room's (its pose); None where the camera is not part of a rig
    camera_to_room: np.ndarray | None = field(default=None, compare=False)

    @property
    def has_depth(self) -> bool:
        """True when this camera promises a depth image with every color image."""
        return self.registered or self.depth is not None

    @property
    def depth_grid(self) -> Intrinsics | None:
        """The intrinsics of the depth image: its own, or the color camera's when registered."""
        if self.depth is not None:
            return self.depth
        return self.color if self.registered else None


@dataclass(frozen=True)
class MultiViewRig:
    """Several calibrated color cameras that see one scene, and where each sits.

    Every camera's pose is a rigid `camera_to_reference` transform (mm) into one reference camera's
    frame (MVOR: camera 1); `reference_to_room` places the reference camera in the room (MVOR's
    `firstCamToRoomRef`), None when the source does not give it. So a 3D label in one camera's
    frame can be moved into another camera's frame or into the room.
    """

    intrinsics: Mapping[str, Intrinsics] = field(compare=False)  # color camera of each camera id
    camera_to_reference: Mapping[str, np.ndarray] = field(compare=False)  # camera id -> 4x4, mm
    reference: str  # the camera whose frame is the reference (its transform is the identity)
    reference_to_room: np.ndarray | None = field(default=None, compare=False)  # 4x4, mm

    def transform(self, source: str, target: str) -> np.ndarray:
        """The 4x4 rigid transform from camera `source`'s frame to camera `target`'s."""
        for name in (source, target):
            if name not in self.camera_to_reference:
                raise KeyError(f"camera {name!r} is not in the rig (has {sorted(self.camera_to_reference)})")
        return invert_rigid(self.camera_to_reference[target]) @ self.camera_to_reference[source]

    def move(self, points: np.ndarray, source: str, target: str) -> np.ndarray:
        """(..., 3) points in camera `source`'s frame -> the same points in camera `target`'s frame."""
        return apply_rigid(self.transform(source, target), points)

    def to_room(self, points: np.ndarray, source: str) -> np.ndarray:
        """(..., 3) points in camera `source`'s frame -> room coordinates (mm)."""
        if self.reference_to_room is None:
            raise ValueError("this rig has no room transform")
        return apply_rigid(self.reference_to_room @ self.transform(source, self.reference), points)


def _require(mapping: Mapping[str, Any], key: str, where: str, source: str) -> Any:
    if not isinstance(mapping, Mapping):
        raise CalibrationError(source, where, f"expected an object, got {type(mapping).__name__}")
    if key not in mapping:
        raise CalibrationError(source, f"{where}.{key}" if where else key, "missing")
    return mapping[key]


def _number(value: Any, field_name: str, source: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CalibrationError(source, field_name, f"expected a finite number, got {value!r}")
    if positive and value <= 0:
        raise CalibrationError(source, field_name, f"must be > 0, got {value!r}")
    return float(value)


def _integer(value: Any, field_name: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CalibrationError(source, field_name, f"expected a positive integer, got {value!r}")
    return value


def parse_intrinsics(block: Any, where: str, source: str) -> Intrinsics:
    """Intrinsics from a JSON object; raises CalibrationError naming the bad field."""
    known = {"width", "height", "fx", "fy", "cx", "cy", "distortion"}
    if not isinstance(block, Mapping):
        raise CalibrationError(source, where, f"expected an object, got {type(block).__name__}")
    unknown = sorted(set(block) - known)
    if unknown:
        raise CalibrationError(source, f"{where}.{unknown[0]}", f"unknown field (known: {sorted(known)})")
    width = _integer(_require(block, "width", where, source), f"{where}.width", source)
    height = _integer(_require(block, "height", where, source), f"{where}.height", source)
    fx = _number(_require(block, "fx", where, source), f"{where}.fx", source, positive=True)
    fy = _number(_require(block, "fy", where, source), f"{where}.fy", source, positive=True)
    cx = _number(_require(block, "cx", where, source), f"{where}.cx", source)
    cy = _number(_require(block, "cy", where, source), f"{where}.cy", source)
    if not -0.5 <= cx <= width - 0.5:
        raise CalibrationError(source, f"{where}.cx", f"{cx} lies outside the image width {width}")
    if not -0.5 <= cy <= height - 0.5:
        raise CalibrationError(source, f"{where}.cy", f"{cy} lies outside the image height {height}")
    distortion = block.get("distortion", []) or []
    if not isinstance(distortion, (list, tuple)) or len(distortion) not in _DISTORTION_LENGTHS:
        raise CalibrationError(
            source, f"{where}.distortion", f"expected a list of {_DISTORTION_LENGTHS} numbers, got {distortion!r}"
        )
    coeffs = tuple(_number(c, f"{where}.distortion[{i}]", source) for i, c in enumerate(distortion))
    return Intrinsics(width, height, fx, fy, cx, cy, coeffs)


def parse_rigid_transform(value: Any, field_name: str, source: str) -> np.ndarray:
    """A 4x4 rigid transform (rotation + translation in mm); refuses non-rigid matrices."""
    try:
        matrix = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise CalibrationError(source, field_name, "expected a 4x4 matrix of numbers") from None
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise CalibrationError(source, field_name, f"expected a finite 4x4 matrix, got shape {matrix.shape}")
    if not np.allclose(matrix[3], [0, 0, 0, 1], atol=1e-9):
        raise CalibrationError(source, field_name, "last row must be [0, 0, 0, 1]")
    rotation = matrix[:3, :3]
    if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-4) or np.linalg.det(rotation) < 0:
        raise CalibrationError(source, field_name, "the 3x3 block is not a rotation (orthonormal, det +1)")
    return matrix


def parse_camera(camera_id: str, block: Any, source: str) -> CameraCalibration:
    """One camera entry of a calibration file."""
    where = f"cameras.{camera_id}"
    known = {"color", "depth", "registered", "depth_to_color", "depth_unit_mm", "camera_to_room"}
    if not isinstance(block, Mapping):
        raise CalibrationError(source, where, f"expected an object, got {type(block).__name__}")
    unknown = sorted(set(block) - known)
    if unknown:
        raise CalibrationError(source, f"{where}.{unknown[0]}", f"unknown field (known: {sorted(known)})")
    color = parse_intrinsics(_require(block, "color", where, source), f"{where}.color", source)
    depth_block = block.get("depth")
    depth = None if depth_block is None else parse_intrinsics(depth_block, f"{where}.depth", source)
    registered = block.get("registered", False)
    if not isinstance(registered, bool):
        raise CalibrationError(source, f"{where}.registered", f"expected true or false, got {registered!r}")
    extrinsic_value = block.get("depth_to_color")
    extrinsic = None
    if extrinsic_value is not None:
        extrinsic = parse_rigid_transform(extrinsic_value, f"{where}.depth_to_color", source)
    has_depth = registered or depth is not None
    if depth is not None and not registered and extrinsic is None:
        raise CalibrationError(
            source, f"{where}.depth_to_color", "a calibrated (not registered) depth camera needs its 4x4 transform"
        )
    if registered and extrinsic is not None:
        raise CalibrationError(source, f"{where}.depth_to_color", "must be null when the depth is registered")
    if registered and depth is not None:
        ratio_x, ratio_y = depth.width / color.width, depth.height / color.height
        if not math.isclose(ratio_x, ratio_y, rel_tol=1e-6):
            raise CalibrationError(
                source,
                f"{where}.depth",
                f"a registered depth grid must scale the color grid uniformly ({ratio_x} vs {ratio_y})",
            )
    unit_value = block.get("depth_unit_mm")
    if has_depth and unit_value is None:
        raise CalibrationError(
            source, f"{where}.depth_unit_mm", "missing: millimetres per depth count (1.0 for most sensors)"
        )
    unit = 1.0 if unit_value is None else _number(unit_value, f"{where}.depth_unit_mm", source, positive=True)
    pose_value = block.get("camera_to_room")
    pose = None if pose_value is None else parse_rigid_transform(pose_value, f"{where}.camera_to_room", source)
    return CameraCalibration(camera_id, color, depth, registered, extrinsic, unit, pose)


def camera_poses(cameras: Mapping[str, CameraCalibration], source: str | Path = "<calibration>") -> dict:
    """Each camera's pose in the room (`camera_to_room`, 4x4, mm). Raises CalibrationError naming the first camera
    (by id) without one: a multi-view rig needs every camera's."""
    if not cameras:
        raise CalibrationError(source, "cameras", "no cameras: a rig needs at least one")
    for camera_id in sorted(cameras):
        if cameras[camera_id].camera_to_room is None:
            raise CalibrationError(
                source,
                f"cameras.{camera_id}.camera_to_room",
                "missing: every camera of a multi-view rig needs its pose in the room (4x4, mm)",
            )
    return {camera_id: np.asarray(camera.camera_to_room, np.float64) for camera_id, camera in cameras.items()}


def rig_from_calibration(
    cameras: Mapping[str, CameraCalibration], source: str | Path = "<calibration>"
) -> MultiViewRig:
    """The multi-view rig of calibrated cameras that all carry their pose (`camera_to_room`): the first camera (by
    id) is the reference. Raises CalibrationError naming the first camera without a pose."""
    poses = camera_poses(cameras, source)
    reference = sorted(cameras)[0]
    room_to_reference = invert_rigid(poses[reference])
    return MultiViewRig(
        intrinsics={c: cam.color for c, cam in cameras.items()},
        camera_to_reference={c: room_to_reference @ pose for c, pose in poses.items()},
        reference=reference,
        reference_to_room=poses[reference],
    )


def read_json(path: str | Path) -> Any:
    """A JSON file's content, or a CalibrationError saying the file is missing or not JSON."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CalibrationError(path, "<file>", "not found") from None
    except json.JSONDecodeError as error:
        raise CalibrationError(path, "<file>", f"not valid JSON: {error}") from None


def load_calibration(path: str | Path) -> dict[str, CameraCalibration]:
    """Read and validate a calibration file; returns cameras by id."""
    path = Path(path)
    document = read_json(path)
    fmt = _require(document, "format", "", str(path))
    if fmt != CALIBRATION_FORMAT:
        raise CalibrationError(path, "format", f"expected {CALIBRATION_FORMAT!r}, got {fmt!r}")
    version = _require(document, "version", "", str(path))
    if version != 1:
        raise CalibrationError(path, "version", f"this code reads version 1, got {version!r}")
    cameras = _require(document, "cameras", "", str(path))
    if not isinstance(cameras, Mapping) or not cameras:
        raise CalibrationError(path, "cameras", "expected a non-empty object of cameras")
    return {str(cid): parse_camera(str(cid), block, str(path)) for cid, block in cameras.items()}


def _intrinsics_to_dict(intr: Intrinsics) -> dict[str, Any]:
    return {
        "width": intr.width,
        "height": intr.height,
        "fx": intr.fx,
        "fy": intr.fy,
        "cx": intr.cx,
        "cy": intr.cy,
        "distortion": list(intr.distortion),
    }


def calibration_to_dict(cameras: Mapping[str, CameraCalibration]) -> dict[str, Any]:
    """The JSON document `load_calibration` reads back to equal objects."""
    return {
        "format": CALIBRATION_FORMAT,
        "version": 1,
        "cameras": {
            cid: {
                "color": _intrinsics_to_dict(cam.color),
                "depth": None if cam.depth is None else _intrinsics_to_dict(cam.depth),
                "registered": cam.registered,
                "depth_to_color": None if cam.depth_to_color is None else cam.depth_to_color.tolist(),
                "depth_unit_mm": cam.depth_unit_mm,
                **({} if cam.camera_to_room is None else {"camera_to_room": cam.camera_to_room.tolist()}),
            }
            for cid, cam in cameras.items()
        },
    }


def save_calibration(cameras: Mapping[str, CameraCalibration], path: str | Path) -> None:
    durable.write_durable(path, (json.dumps(calibration_to_dict(cameras), indent=2) + "\n").encode())
