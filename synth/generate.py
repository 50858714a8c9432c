"""`labels synth`: a deterministic synthetic RGB-D data set with ground truth.

Output layout (both frame sources read it; see docs/frame_sources.md, "Synthetic scenes")::

    OUT/dayN/camM/color/NNNNNN.png             8-bit BGR color
    OUT/dayN/camM/depth/NNNNNN.png             16-bit depth registered to color
    OUT/dayN/camM/depth_calibrated/NNNNNN.png  16-bit depth of a second, calibrated depth camera
    OUT/annotations.json        COCO keypoints ground truth + MVOR's cameras_info / dataset_info
    OUT/calibration.json        registered rigs          (ManifestSource)
    OUT/manifest.jsonl          frames with registered depth
    OUT/calibrated_rig/calibration.json, OUT/calibrated_rig/manifest.jsonl   the calibrated rigs
    OUT/synth.json              the generator's settings

Same arguments, same data: every random draw comes from a generator seeded by (seed, frame), and
every number written to JSON is canonical (`canonical`). Same bytes on the same machine; another
CPU's float arithmetic may move a rendered pixel by a level (see tests/synth/sample_compare.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils
from tqdm import tqdm

from orpose.frames.calibration import CameraCalibration, Intrinsics, save_calibration
from orpose.frames.geometry import apply_rigid, invert_rigid, project
from orpose.joints import COCO_KEYPOINTS, COCO_SKELETON
from orpose.synth.body import JOINT_RADIUS_MM
from orpose.synth.render import KIND_CAPSULE, render
from orpose.synth.scene import sample_rig, sample_scene, sensor_holes, shade

__all__ = ["SynthSettings", "generate", "keypoint_visibility", "VISIBILITY_SLACK_MM"]

GENERATOR_VERSION = 1
FPS = 10.0  # timestamps of the synthetic recording
VISIBILITY_SLACK_MM = 40.0  # how far in front of a joint's limb surface another surface must be to hide it


@dataclass(frozen=True)
class SynthSettings:
    frames: int = 8  # instants; each is seen by every camera
    seed: int = 0
    cameras: int = 1  # ceiling cameras (1..4)
    width: int = 640
    height: int = 480
    max_people: int = 4
    calibrated_depth: bool = True  # also render a second depth camera with its own intrinsics and extrinsics
    depth_unit_mm: float = 1.0  # millimetres per depth count written into the PNGs
    holes: bool = True  # sensor-like holes (0) at depth edges and in a few blobs
    day: int = 1

    def __post_init__(self):
        checks = {
            "frames": self.frames >= 1,
            "cameras": 1 <= self.cameras <= 4,
            "width": self.width >= 32,
            "height": self.height >= 32,
            "max_people": self.max_people >= 1,
            "depth_unit_mm": self.depth_unit_mm > 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"synth settings: invalid {bad[0]}={getattr(self, bad[0])!r}")


def keypoint_visibility(
    joints_cam: np.ndarray,
    intr: Intrinsics,
    depth: np.ndarray,
    owner: np.ndarray,
    person: int,
    radius_mm: np.ndarray = JOINT_RADIUS_MM,
    slack_mm: float = VISIBILITY_SLACK_MM,
) -> tuple[np.ndarray, np.ndarray]:
    """COCO keypoints of one person: (17, 2) pixel coordinates and visibility flags.

    v = 0 outside the image (coordinates set to 0, as COCO does), 1 hidden, 2 visible. A joint is
    visible when the pixel it projects to shows this person's surface no further in front of the
    joint than the limb radius plus `slack_mm`; another person or the person's own other limb
    closer to the camera hides it.
    """
    uv = project(joints_cam, intr)
    flags = np.zeros(len(joints_cam), dtype=np.int64)
    for j, (u, v) in enumerate(uv):
        if not np.all(np.isfinite((u, v))):
            continue
        col, row = int(round(u)), int(round(v))
        if not (0 <= col < intr.width and 0 <= row < intr.height):
            continue
        seen = owner[row, col] == person and depth[row, col] >= joints_cam[j, 2] - radius_mm[j] - slack_mm
        flags[j] = 2 if seen else 1
    uv = np.where(flags[:, None] > 0, uv, 0.0)
    return uv, flags


def _write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise RuntimeError(f"PNG encoding failed for {path}")
    path.write_bytes(encoded.tobytes())


def _depth_counts(depth_mm: np.ndarray, unit_mm: float, holes: np.ndarray | None) -> np.ndarray:
    counts = np.clip(np.round(depth_mm / unit_mm), 0, 65535).astype(np.uint16)
    if holes is not None:
        counts[holes] = 0
    return counts


def canonical(values, digits: int = 3) -> list[float]:
    """Numbers as written to the JSON files: rounded to `digits` decimals, with no negative zero.

    The last bits of float arithmetic differ between CPUs (SIMD sin/cos, BLAS summation order), so
    a written digit below what the value means, or the sign of a zero, would make the same data
    different bytes on another machine. Adding 0.0 turns -0.0 into 0.0 and leaves the rest alone.
    """
    return [round(float(x), digits) + 0.0 for x in np.asarray(values, dtype=np.float64).ravel()]


CALIBRATION_DIGITS = 6  # pixels and millimetres to a millionth, rotations to 1e-6 (3 um at 3 m)


def _canonical_matrix(matrix: np.ndarray) -> np.ndarray:
    return np.asarray(canonical(matrix, CALIBRATION_DIGITS)).reshape(np.shape(matrix))


def _canonical_intrinsics(intr: Intrinsics) -> Intrinsics:
    fx, fy, cx, cy = canonical([intr.fx, intr.fy, intr.cx, intr.cy], CALIBRATION_DIGITS)
    return Intrinsics(intr.width, intr.height, fx, fy, cx, cy, tuple(canonical(intr.distortion, CALIBRATION_DIGITS)))


def _mvor_cameras_info(rigs, depth_unit_mm: float) -> tuple[dict, dict]:
    """`cameras_info` and `dataset_info` in MVOR's own layout (see frames.mvor): per camera its
    intrinsics and camera -> first camera transform, the first camera's pose in the room (the
    generator's world frame), serials mapped to the N of camN."""
    world_to_first = rigs[0].world_to_color
    serials = [f"synth-{rig.camera_id}" for rig in rigs]
    intrinsics = []
    for rig, serial in zip(rigs, serials):
        color = _canonical_intrinsics(rig.color)
        intrinsics.append(
            {
                "serialnumber": serial,
                "focallength": [color.fx, color.fy],
                "principalpoint": [color.cx, color.cy],
                "distortion": [0.0] * 5,
                "skew_value": 0,
                "imagesize": [color.width, color.height],
                "depth_unit_mm": depth_unit_mm,
            }
        )
    cameras_info = {
        "camParams": {
            "intrinsics": intrinsics,
            "ids": serials,
            "extrinsics": [
                canonical(world_to_first @ invert_rigid(rig.world_to_color), CALIBRATION_DIGITS) for rig in rigs
            ],
            "firstCamToRoomRef": canonical(invert_rigid(world_to_first), CALIBRATION_DIGITS),
        }
    }
    dataset_info = {
        "camid_2_num": {serial: int(rig.camera_id.removeprefix("cam")) for serial, rig in zip(serials, rigs)}
    }
    return cameras_info, dataset_info


def _person_annotation(
    person, p: int, owner: np.ndarray, depth: np.ndarray, rig, image_id: int, ann_id: int
) -> dict | None:
    """COCO annotation of person `p` in one view, or None when the camera does not see it."""
    person_mask = owner == p
    area = int(person_mask.sum())
    if area == 0:
        return None  # outside this camera's view
    joints_cam = apply_rigid(rig.world_to_color, person.joints)
    uv, flags = keypoint_visibility(joints_cam, rig.color, depth, owner, p)
    rle = mask_utils.encode(np.asfortranarray(person_mask.astype(np.uint8)))
    bbox = mask_utils.toBbox(rle).tolist()
    keypoints = np.concatenate([uv, flags[:, None]], axis=1)
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": 1,
        "iscrowd": 0,
        "area": area,
        "bbox": canonical(bbox, 2),
        "segmentation": {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")},
        "keypoints": [canonical([x])[0] if i % 3 < 2 else int(x) for i, x in enumerate(keypoints.ravel())],
        "num_keypoints": int((flags > 0).sum()),
        "keypoints_3d": canonical(joints_cam),
        "person_id": p + 1,
    }


@dataclass
class _Collected:
    """What the views of all instants add to the annotation file and the manifests."""

    images: list = field(default_factory=list)
    annotations: list = field(default_factory=list)
    multiview: list = field(default_factory=list)
    manifest: list = field(default_factory=list)
    manifest_calibrated: list = field(default_factory=list)


def _render_view(
    out: Path, settings: SynthSettings, scene, rig, camera_key: str, k: int, c: int, got: _Collected
) -> int:
    """Render and write camera `c`'s view of instant `k`; append its records to `got`; return its image id."""
    stem = f"{k:06d}"
    color_rel = f"{camera_key}/color/{stem}.png"
    depth_rel = f"{camera_key}/depth/{stem}.png"
    noise_rng = np.random.default_rng([settings.seed, 2, k, c])

    view = render(scene.geometry, rig.color, rig.world_to_color)
    _write_png(out / color_rel, shade(scene, view))
    holes = sensor_holes(view.depth, noise_rng) if settings.holes else None
    _write_png(out / depth_rel, _depth_counts(view.depth, settings.depth_unit_mm, holes))

    image_id = len(got.images) + 1
    frame_id = f"{camera_key}/{stem}"
    timestamp = (k - 1) / FPS
    got.images.append(
        {
            "id": image_id,
            "file_name": color_rel,
            "depth_file_name": depth_rel,
            "width": rig.color.width,
            "height": rig.color.height,
            "frame_id": frame_id,
            "camera_id": camera_key,
            "timestamp": timestamp,
        }
    )
    entry = {"frame_id": frame_id, "camera": camera_key, "color": color_rel, "depth": depth_rel, "timestamp": timestamp}
    got.manifest.append(entry)

    owner = np.where(view.kind == KIND_CAPSULE, scene.capsule_owner[view.index], -1)
    for p, person in enumerate(scene.people):
        annotation = _person_annotation(person, p, owner, view.depth, rig, image_id, len(got.annotations) + 1)
        if annotation is not None:
            got.annotations.append(annotation)

    if rig.depth is not None:
        calibrated_rel = f"{camera_key}/depth_calibrated/{stem}.png"
        second = render(scene.geometry, rig.depth, rig.world_to_depth())
        holes = sensor_holes(second.depth, noise_rng) if settings.holes else None
        _write_png(out / calibrated_rel, _depth_counts(second.depth, settings.depth_unit_mm, holes))
        # Paths relative to calibrated_rig/, where this manifest lives beside its calibration.
        got.manifest_calibrated.append({**entry, "color": f"../{color_rel}", "depth": f"../{calibrated_rel}"})
    return image_id


def _ground_truth(settings: SynthSettings, rigs, got: _Collected) -> dict:
    """The MVOR-shaped annotation file: COCO images and annotations plus MVOR's multi-view and camera tables."""
    cameras_info, dataset_info = _mvor_cameras_info(rigs, settings.depth_unit_mm)
    return {
        "info": {
            "description": "or-pose-labels synthetic OR scenes",
            "generator_version": GENERATOR_VERSION,
            "settings": asdict(settings),
        },
        "images": got.images,
        "annotations": got.annotations,
        "categories": [
            {
                "id": 1,
                "name": "person",
                "supercategory": "person",
                "keypoints": list(COCO_KEYPOINTS),
                "skeleton": [[a + 1, b + 1] for a, b in COCO_SKELETON],
            }
        ],
        "multiview_images": got.multiview,
        "cameras_info": cameras_info,
        "dataset_info": dataset_info,
    }


def _write_jsonl(path: Path, entries: list[dict]) -> None:
    # Camera-major, by frame id: the order of the MVOR tree source.
    path.write_text("".join(json.dumps(e) + "\n" for e in sorted(entries, key=lambda e: e["frame_id"])))


def _write_rig_files(out: Path, settings: SynthSettings, rigs, camera_keys: list[str], got: _Collected) -> None:
    """calibration.json and manifest.jsonl, and their calibrated_rig/ twins when the rig has a depth camera."""
    # each color camera's pose in the room (the generator's world frame): the rig that multi-view fusion reads
    poses = {key: _canonical_matrix(invert_rigid(rig.world_to_color)) for key, rig in zip(camera_keys, rigs)}
    registered = {
        key: CameraCalibration(
            key, _canonical_intrinsics(rig.color), None, True, None, settings.depth_unit_mm, poses[key]
        )
        for key, rig in zip(camera_keys, rigs)
    }
    save_calibration(registered, out / "calibration.json")
    _write_jsonl(out / "manifest.jsonl", got.manifest)
    if not settings.calibrated_depth:
        return
    calibrated = {
        key: CameraCalibration(
            key,
            _canonical_intrinsics(rig.color),
            _canonical_intrinsics(rig.depth),
            False,
            _canonical_matrix(rig.depth_to_color),
            settings.depth_unit_mm,
            poses[key],
        )
        for key, rig in zip(camera_keys, rigs)
    }
    (out / "calibrated_rig").mkdir(exist_ok=True)
    save_calibration(calibrated, out / "calibrated_rig" / "calibration.json")
    _write_jsonl(out / "calibrated_rig" / "manifest.jsonl", got.manifest_calibrated)


def generate(out_dir: str | Path, settings: SynthSettings, progress: bool = True) -> dict:
    """Render the data set into `out_dir`; returns counts (frames, images, persons)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rigs = sample_rig(
        np.random.default_rng([settings.seed, 0]),
        settings.cameras,
        settings.width,
        settings.height,
        settings.calibrated_depth,
    )
    camera_keys = [f"day{settings.day}/{rig.camera_id}" for rig in rigs]

    got = _Collected()
    for k in tqdm(range(1, settings.frames + 1), desc="synth", unit="instant", disable=not progress):
        scene = sample_scene(np.random.default_rng([settings.seed, 1, k]), settings.max_people)
        view_ids = [
            _render_view(out, settings, scene, rig, camera_key, k, c, got)
            for c, (rig, camera_key) in enumerate(zip(rigs, camera_keys))
        ]
        got.multiview.append({"id": k, "image_ids": view_ids})

    (out / "annotations.json").write_text(json.dumps(_ground_truth(settings, rigs, got), indent=1) + "\n")
    _write_rig_files(out, settings, rigs, camera_keys, got)
    (out / "synth.json").write_text(
        json.dumps({"generator_version": GENERATOR_VERSION, **asdict(settings)}, indent=1) + "\n"
    )
    return {"instants": settings.frames, "images": len(got.images), "persons": len(got.annotations)}
