"""`labels export-rerun`: a run as a Rerun recording (.rrd), to look at in Rerun's viewer.

The Rerun SDK is an optional extra (`pip install -e ".[rerun]"`); only this module imports it.
Entities, per camera (`cameras/<camera id>`), on the timelines `frame` (the frame's index in its
camera) and `time` (the source's timestamp, where it has one):

    cameras/<cam>                            view coordinates: x right, y down, z forward (metres)
    cameras/<cam>/color                      pinhole of the color camera (static), the color image
    cameras/<cam>/color/boxes                person boxes, labelled with the detector score
    cameras/<cam>/color/persons/<k>/soft     the 17 COCO keypoints; attributes confidence, tta_spread_px, hard
    cameras/<cam>/color/persons/<k>/soft_limbs, hard, hard_limbs    soft limbs, the hard keypoints and limbs
    cameras/<cam>/depth                      the depth image (mm; meter = 1000)
    cameras/<cam>/depth/persons/<k>          keypoints carried onto the depth frame; attribute depth_flag
    cameras/<cam>/points                     the depth as a point cloud in the color camera frame
    cameras/<cam>/skeletons3d/<k>/joints     Human3.6M-17 camera-frame pose; attribute depth_consistency
    cameras/<cam>/skeletons3d/<k>/limbs      its limbs
    cameras/<cam>/fused3d/<k>/joints         multi-view fusion: the COCO-17 joints triangulated from the instant's
                                             views (pose3d_room_camera); attributes views, error_px, hard
    cameras/<cam>/fused3d/<k>/limbs          its limbs (runs labelled with fusion.enabled=true)
    cameras/<cam>/log                        rejected frames, with reason and detail

Colors follow `visualize.drawing`: left blue, right orange, centre green. Skeletons are drawn as
line strips (not Rerun's annotation-context keypoints) so they look the same in every viewer version.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from orpose.errors import USAGE, OrPoseError
from orpose.frames.decode import decode_depth
from orpose.frames.sources import depth_counts_to_mm, open_source
from orpose.joints import COCO_KEYPOINTS, COCO_SKELETON, H36M_JOINTS, H36M_SKELETON, joint_sides
from orpose.label_store.reader import LabelRun
from orpose.label_store.schema import DEPTH_HOLE
from orpose.stages.depth_transfer import depth_points_in_color_frame
from orpose.visualize.drawing import COCO_JOINT_COLORS, COCO_LIMB_COLORS, H36M_LIMB_COLORS, SIDE_COLORS

__all__ = ["export_rerun", "RerunExport", "RerunMissing"]

_MM = 1000.0  # the recording is in metres, the labels in millimetres
_POINT_STRIDE = 4  # every 4th depth row and column: a 640 x 480 frame gives about 19k points


class RerunMissing(OrPoseError, RuntimeError):
    """The optional Rerun SDK is not installed."""

    exit_code = USAGE


@dataclass
class RerunExport:
    """What was written, for the command to print and the tests to check."""

    path: Path
    frames: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # camera -> frames logged
    persons: int = 0
    rejected: int = 0
    point_clouds: int = 0
    notes: list[str] = field(default_factory=list)


def _rgb(colors) -> np.ndarray:
    return np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in colors], np.uint8)


_COCO_JOINT_RGB = _rgb(COCO_JOINT_COLORS)
_COCO_LIMB_RGB = _rgb(COCO_LIMB_COLORS)
_H36M_LIMB_RGB = _rgb(H36M_LIMB_COLORS)
_H36M_JOINT_RGB = _rgb([SIDE_COLORS[s] for s in joint_sides(H36M_JOINTS)])


def _limbs(points: np.ndarray, skeleton, keep: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """The limbs of a skeleton whose two ends are kept (and finite), as 2-point strips, and their indices."""
    chosen = [i for i, (a, b) in enumerate(skeleton) if keep[a] and keep[b]]
    return [points[[skeleton[i][0], skeleton[i][1]]] for i in chosen], np.array(chosen, np.int64)


def _calibrations(run: LabelRun, calibration: str | None, notes: list[str]) -> dict:
    """The calibration of each camera, from the run's source (run.json) or the file given."""
    run_json = run.path / "run.json"
    if not run_json.exists():
        notes.append("no run.json (a single shard?): no pinholes and no depth point clouds")
        return {}
    source_path = json.loads(run_json.read_text()).get("source")
    try:
        return dict(open_source(source_path, calibration=calibration).calibrations())
    except Exception as error:  # noqa: BLE001 - the recording is still useful without 3D context
        notes.append(f"source {source_path} could not be opened ({error}): no pinholes and no depth point clouds")
        return {}


def export_rerun(
    run_path: str | Path,
    out: str | Path,
    frames_per_camera: int | None = None,
    calibration: str | None = None,
    progress: bool = False,
) -> RerunExport:
    """Write `out` (.rrd) with the first `frames_per_camera` frames of each camera (all by default)."""
    try:
        import rerun as rr
    except ImportError as error:
        raise RerunMissing(
            'the Rerun SDK is an optional extra: pip install -e ".[rerun]" (or pip install rerun-sdk)'
        ) from error
    run = LabelRun(run_path)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = RerunExport(out)
    calibrations = _calibrations(run, calibration, result.notes)
    threshold = float((run.provenance().get("thresholds_json") or {}).get("keypoint_score", 0.35))

    by_camera: dict[str, list[str]] = defaultdict(list)
    for frame_id, camera_id in zip(run.index.frame_id, run.index.camera_id):  # the index: no shard opened to choose
        camera = camera_id.decode()
        if frames_per_camera is None or len(by_camera[camera]) < frames_per_camera:
            by_camera[camera].append(frame_id.decode())

    recording = rr.RecordingStream("or-pose-labels", recording_id=str(run.path.resolve()))
    recording.save(str(out))
    work = [(camera, index, frame_id) for camera, ids in by_camera.items() for index, frame_id in enumerate(ids)]
    if progress:
        from tqdm import tqdm

        work = tqdm(work, desc="export-rerun", unit="frame")
    for camera in by_camera:
        root = f"cameras/{camera}"
        recording.log(root, rr.ViewCoordinates.RDF, static=True)
        calib = calibrations.get(camera)
        if calib is not None:
            recording.log(
                f"{root}/color",
                rr.Pinhole(
                    image_from_camera=calib.color.matrix(),
                    resolution=np.array(calib.color.size),
                    image_plane_distance=0.3,
                ),
                static=True,
            )
    for camera, index, frame_id in work:
        calib = calibrations.get(camera)
        _log_frame(rr, recording, run.get(frame_id), f"cameras/{camera}", index, calib, threshold, result)
    recording.flush()
    del recording  # closes the file
    return result


def _log_frame(rr, recording, labels, root: str, index: int, calib, threshold: float, result: RerunExport) -> None:
    frame, p = labels.frame, labels.persons
    recording.set_time("frame", sequence=index)
    if np.isfinite(frame["timestamp"]):
        recording.set_time("time", duration=float(frame["timestamp"]))
    for entity in (f"{root}/color/persons", f"{root}/depth/persons", f"{root}/skeletons3d", f"{root}/color/boxes"):
        recording.log(entity, rr.Clear(recursive=True))
    result.frames[frame["camera_id"]] += 1
    if not labels.labelled:
        result.rejected += 1
        recording.log(
            f"{root}/log",
            rr.TextLog(f"{labels.frame_id} rejected: {frame['reject_reason']}: {frame['reject_detail']}", level="WARN"),
        )
        return
    _log_images(rr, recording, labels, root, calib, result)
    if len(labels):
        boxes = p["box"].astype(np.float64)
        recording.log(
            f"{root}/color/boxes",
            rr.Boxes2D(
                array=boxes,
                array_format=rr.Box2DFormat.XYXY,
                labels=[f"person {k}: score {s:.2f}" for k, s in enumerate(p["score"])],
            ),
        )
    for k in range(len(labels)):
        result.persons += 1
        _log_person(rr, recording, p, k, root, threshold)


def _log_images(rr, recording, labels, root: str, calib, result: RerunExport) -> None:
    """The colour image, the depth image in metres and, with a calibration, its point cloud."""
    frame = labels.frame
    if Path(frame["color_path"]).exists():
        recording.log(f"{root}/color", rr.EncodedImage(path=frame["color_path"]))
    depth_mm = None
    if frame["depth_path"]:
        try:
            depth_mm = depth_counts_to_mm(decode_depth(frame["depth_path"], labels.frame_id), frame["depth_unit_mm"])
        except Exception as error:  # noqa: BLE001 - labelled once, unreadable now (moved, deleted)
            result.notes.append(f"{labels.frame_id}: depth image not readable now ({error})")
    if depth_mm is not None:
        recording.log(f"{root}/depth", rr.DepthImage(depth_mm.astype(np.float32), meter=_MM))
        if calib is not None and calib.has_depth:
            cloud = depth_points_in_color_frame(depth_mm, calib, stride=_POINT_STRIDE) / _MM
            gray = np.array([[150, 150, 150]], np.uint8)
            recording.log(f"{root}/points", rr.Points3D(cloud, colors=gray, radii=0.004))
            result.point_clouds += 1


def _log_person(rr, recording, p: dict, k: int, root: str, threshold: float) -> None:
    """Person k: soft and hard 2D keypoints and limbs, its keypoints on the depth frame, its 3D skeleton."""
    keypoints, hard = p["keypoints_2d"][k].astype(np.float64), p["hard_mask"][k]
    confident = keypoints[:, 2] > threshold
    person = f"{root}/color/persons/{k}"
    recording.log(
        f"{person}/soft",
        rr.Points2D(
            keypoints[:, :2],
            colors=_COCO_JOINT_RGB,
            radii=np.where(confident, 3.0, 1.5).astype(np.float32),
            labels=list(COCO_KEYPOINTS),
        ),
        rr.AnyValues(
            confidence=keypoints[:, 2].astype(np.float32),
            tta_spread_px=p["keypoint_spread"][k].astype(np.float32),
            hard=hard.astype(np.uint8),
        ),
    )
    strips, chosen = _limbs(keypoints[:, :2], COCO_SKELETON, np.ones(17, bool))
    recording.log(f"{person}/soft_limbs", rr.LineStrips2D(strips, colors=_COCO_LIMB_RGB[chosen], radii=0.75))
    if hard.any():
        recording.log(
            f"{person}/hard",
            rr.Points2D(
                keypoints[hard, :2],
                colors=_COCO_JOINT_RGB[hard],
                radii=4.5,
                labels=[n for n, h in zip(COCO_KEYPOINTS, hard) if h],
            ),
        )
        strips, chosen = _limbs(keypoints[:, :2], COCO_SKELETON, hard)
        if strips:
            recording.log(f"{person}/hard_limbs", rr.LineStrips2D(strips, colors=_COCO_LIMB_RGB[chosen], radii=2.0))
    flag = p["depth_flag"][k]
    seen = flag <= DEPTH_HOLE
    if seen.any():
        recording.log(
            f"{root}/depth/persons/{k}",
            rr.Points2D(p["depth_keypoints"][k][seen].astype(np.float64), colors=_COCO_JOINT_RGB[seen], radii=2.5),
            rr.AnyValues(depth_flag=flag[seen].astype(np.uint8)),
        )
    pose = p["pose3d_camera"][k].astype(np.float64) / _MM
    if np.isfinite(pose).all():
        skeleton = f"{root}/skeletons3d/{k}"
        recording.log(
            f"{skeleton}/joints",
            rr.Points3D(pose, colors=_H36M_JOINT_RGB, radii=0.02, labels=list(H36M_JOINTS)),
            rr.AnyValues(depth_consistency_coco=p["depth_consistency"][k].astype(np.float32)),
        )
        strips, chosen = _limbs(pose, H36M_SKELETON, np.ones(17, bool))
        recording.log(f"{skeleton}/limbs", rr.LineStrips3D(strips, colors=_H36M_LIMB_RGB[chosen], radii=0.01))
    fused = p["pose3d_room_camera"][k].astype(np.float64) / _MM
    triangulated = np.isfinite(fused).all(axis=1)
    if triangulated.any():
        skeleton = f"{root}/fused3d/{k}"
        recording.log(
            f"{skeleton}/joints",
            rr.Points3D(
                fused[triangulated],
                colors=_COCO_JOINT_RGB[triangulated],
                radii=0.025,
                labels=[n for n, t in zip(COCO_KEYPOINTS, triangulated) if t],
            ),
            rr.AnyValues(
                views=p["pose3d_room_views"][k][triangulated].astype(np.uint8),
                error_px=p["pose3d_room_error_px"][k][triangulated].astype(np.float32),
                hard=p["pose3d_room_hard"][k][triangulated].astype(np.uint8),
            ),
        )
        strips, chosen = _limbs(fused, COCO_SKELETON, triangulated)
        if strips:
            recording.log(f"{skeleton}/limbs", rr.LineStrips3D(strips, colors=_COCO_LIMB_RGB[chosen], radii=0.012))
