"""From a decoded frame and its teacher output to the rows a shard stores.

`labelled_record` stores the label sets (S2D, H2D, S3D, H3D; the hard set as decided by the lift
stage), carries the keypoints onto the depth frame and anchors the soft 3D poses in the camera
frame; `rejected_record`
keeps a frame that failed to decode as a row with its reason, so every planned frame is
accounted for in exactly one shard.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

from orpose.frames.sources import FrameRef
from orpose.joints import SURFACE_OFFSET_MM
from orpose.label_store.schema import STATUS_LABELLED, STATUS_REJECTED
from orpose.label_store.shard import FrameRecord
from orpose.stages.depth_transfer import anchor_poses, transfer_keypoints

__all__ = ["labelled_record", "rejected_record", "encode_masks", "frame_row"]


def encode_masks(masks: np.ndarray) -> list[str]:
    """(P, H, W) bool -> COCO RLE counts strings."""
    return [mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"].decode("ascii") for m in masks]


def frame_row(ref: FrameRef, calibration, status: int, reason: str = "", detail: str = "") -> dict:
    depth_grid = calibration.depth_grid if calibration is not None else None
    has_depth = depth_grid is not None and ref.depth_path is not None
    return {
        "frame_id": ref.frame_id,
        "camera_id": ref.camera_id,
        "color_path": ref.color_path,
        "depth_path": ref.depth_path or "",
        "color_size": [calibration.color.width, calibration.color.height] if calibration is not None else [0, 0],
        "depth_size": [depth_grid.width, depth_grid.height] if has_depth else [0, 0],
        "depth_unit_mm": calibration.depth_unit_mm if has_depth else 0.0,
        "timestamp": ref.timestamp if ref.timestamp is not None else np.nan,
        "status": status,
        "reject_reason": reason,
        "reject_detail": detail,
    }


def rejected_record(ref: FrameRef, calibration, reason: str, detail: str) -> FrameRecord:
    """A frame that failed: its reason tag (a FrameError's `reason`) and the full message."""
    return FrameRecord(frame_row(ref, calibration, STATUS_REJECTED, reason, detail))


def labelled_record(
    ref: FrameRef,
    calibration,
    depth_mm: np.ndarray | None,
    *,
    boxes: np.ndarray,
    scores: np.ndarray,
    mask_rle: list[str],
    keypoints: np.ndarray,
    spread: np.ndarray,
    hard_mask: np.ndarray,
    hard_valid: np.ndarray,
    pose_soft: np.ndarray,
    pose_hard: np.ndarray,
    depth_radius_px: float = 3.0,
    surface_offset_mm: np.ndarray = SURFACE_OFFSET_MM,
) -> FrameRecord:
    """One frame's labels as a shard row. `hard_mask`, `hard_valid`: the hard set
    (`stages.label_sets.hard_keypoints`); `pose_hard` is lifted from it (its rows where hard_valid
    is false become NaN here). `depth_mm`: the frame's depth in millimetres (None without depth)."""
    people = len(boxes)
    keypoints = np.asarray(keypoints, dtype=np.float32).reshape(people, 17, 3)
    hard_mask = np.asarray(hard_mask, dtype=bool).reshape(people, 17)
    hard_valid = np.asarray(hard_valid, dtype=bool).reshape(people)
    pose_hard = np.where(hard_valid[:, None, None], pose_hard, np.nan)
    transfer = transfer_keypoints(keypoints[..., :2].reshape(-1, 2), depth_mm, calibration, depth_radius_px)
    flags = transfer.flag.reshape(people, 17)
    surface = transfer.surface.reshape(people, 17, 3)
    camera, consistency = anchor_poses(pose_soft, keypoints, surface, flags, calibration, surface_offset_mm)
    persons = {
        "box": boxes,
        "score": scores,
        "mask_rle": list(mask_rle),
        "keypoints_2d": keypoints,
        "keypoint_spread": spread,
        "hard_mask": hard_mask,
        "hard_valid": hard_valid,
        "pose3d_soft": pose_soft,
        "pose3d_hard": pose_hard,
        "depth_keypoints": transfer.uv.reshape(people, 17, 2),
        "depth_flag": flags,
        "pose3d_camera": camera,
        "depth_consistency": consistency,
    }
    return FrameRecord(frame_row(ref, calibration, STATUS_LABELLED), persons)
