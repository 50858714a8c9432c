"""`PersonCropDataset`: one item per person, a perspective-correct crop of color and depth (seed 004's recipe).

A plain crop of a person near the image border sees them obliquely: the crop's centre is not on the optical
axis, so the crop is not what a camera looking at the person would see, and a 3D pose in the camera frame
does not project into it with a crop-shifted K. Instead, a virtual camera at the same centre is rotated so
that its optical axis passes through the person's box centre (rotation R), the image is warped with the
homography H = K_crop R K^-1, and the crop is the square around the box centre, resized to `size`:

    ray d = K^-1 (u, v, 1)         z' = d / |d|,  x' = (y x z') / |y x z'|,  y' = z' x x'   (camera axes:
    R = [x'; y'; z']               x right, y down, z forward; R's rows are the virtual camera's axes)
    K_crop = [[f k, 0, (size - 1) / 2], [0, f k, (size - 1) / 2], [0, 0, 1]]

where f is the camera's focal length and k scales the box's extent in the rotated view to `size` (with a
margin). A 3D point X in the camera frame is R X in the virtual camera and projects with K_crop exactly
where H sends its projection in the image: `pose3d_camera` rotated into the virtual camera projects onto
the crop's keypoints as well as the unrotated pose did onto the image's (the invariant the tests check).

Depth is warped with the same rotation through the depth grid's intrinsics (nearest neighbour: no
blending across depth edges); that is exact for depth registered to the color camera (the same centre).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from orpose.frames.calibration import Intrinsics
from orpose.frames.decode import decode_color, decode_depth
from orpose.label_store.dataset import RunSource, eligible_frames
from orpose.label_store.packing import pack_item
from orpose.label_store.reader import LabelRun
from orpose.label_store.shard import read_dataset

__all__ = ["PersonCropDataset", "look_at_rotation", "crop_geometry"]


def look_at_rotation(k: np.ndarray, u: float, v: float) -> np.ndarray:
    """R whose rows are the axes of a camera at the same centre looking through pixel (u, v)."""
    ray = np.linalg.solve(k, [u, v, 1.0])
    z = ray / np.linalg.norm(ray)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z])


def _apply(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    xyw = np.concatenate([points, np.ones((*points.shape[:-1], 1))], axis=-1) @ h.T
    return xyw[..., :2] / xyw[..., 2:]


def crop_geometry(
    k: np.ndarray, box: np.ndarray, size: int, margin: float = 1.2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(R, K_crop, H) for a person's box (pixel edges) in an image of intrinsics K: see the module docstring."""
    u, v = (box[0] + box[2]) / 2 - 0.5, (box[1] + box[3]) / 2 - 0.5  # the box centre as a pixel-index point
    r = look_at_rotation(k, u, v)
    f = (k[0, 0] + k[1, 1]) / 2
    centred = np.array([[f, 0.0, 0.0], [0.0, f, 0.0], [0.0, 0.0, 1.0]])  # principal point at 0: the crop centre
    corners = np.array([[box[0], box[1]], [box[2], box[1]], [box[0], box[3]], [box[2], box[3]]], dtype=float)
    seen = _apply(centred @ r @ np.linalg.inv(k), corners)
    side = 2 * np.abs(seen).max() * margin  # the concentric square that holds the whole box
    scale = size / max(side, 1e-6)
    k_crop = np.array([[f * scale, 0.0, (size - 1) / 2], [0.0, f * scale, (size - 1) / 2], [0.0, 0.0, 1.0]])
    return r, k_crop, k_crop @ r @ np.linalg.inv(k)


class PersonCropDataset(Dataset):
    """One item per person of the run (the hard set's, or every soft skeleton with `label_set="soft"`):

    {"color" (3, size, size) float32 RGB, "depth" (1, size, size) float32 mm (0 where unknown), "frame_id",
    "person" (its row in the frame), "intrinsics" (3, 3) K_crop, "rotation" (3, 3) R, "pose3d_camera"
    (17, 3) mm rotated into the virtual camera, "keypoints" (17, 3) COCO-17 x, y in crop pixels and
    confidence, "valid" (17,) keypoints inside the crop with confidence > 0, "score"}.

    Needs the run's `calibration.json` (written by `labels run`). `transform(item) -> item` as for the other
    readers."""

    def __init__(
        self,
        run: LabelRun | str | Path,
        size: int = 257,
        label_set: str = "hard",
        margin: float = 1.2,
        min_score: float | None = None,
        transform: Callable[[dict], dict] | None = None,
    ):
        if label_set not in ("soft", "hard"):
            raise ValueError(f"label_set must be 'soft' or 'hard', got {label_set!r}")
        self.source = RunSource(run)
        if not self.source.cameras:
            raise FileNotFoundError(
                f"{self.source.path}: no calibration.json: person crops need the cameras' intrinsics "
                "(runs written by `labels run` keep them)"
            )
        self.size, self.margin, self.transform = size, margin, transform
        index = self.source.index
        frames = np.flatnonzero(eligible_frames(index, "rgbd") & (index.persons > 0))
        entries = []  # (position, person row within its frame)
        for shard in np.unique(index.shard[frames]):
            handle = self.source.handle(int(shard))
            offsets = read_dataset(handle["frames/person_offset"])
            hard = read_dataset(handle["persons/hard_valid"])
            score = read_dataset(handle["persons/score"])
            for position in frames[index.shard[frames] == shard]:
                row = int(index.row[position])
                for person in range(offsets[row + 1] - offsets[row]):
                    at = offsets[row] + person
                    if (label_set == "soft" or hard[at]) and (min_score is None or score[at] >= min_score):
                        entries.append((position, person))
        self.entries = np.array(entries, dtype=np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> dict:
        position, person = (int(v) for v in self.entries[i])
        frame, persons = self.source.read_frame(position, "rgbd")
        color_k, depth_k = self.source.cameras_of(frame["camera_id"])
        k = color_k.matrix()
        box = persons["box"][person]
        r, k_crop, h = crop_geometry(k, box, self.size, self.margin)
        color = decode_color(frame["color_path"], frame["frame_id"])[:, :, ::-1]
        color = cv2.warpPerspective(np.ascontiguousarray(color), h, (self.size, self.size), flags=cv2.INTER_LINEAR)
        depth = decode_depth(frame["depth_path"], frame["frame_id"]).astype(np.float32) * np.float32(
            frame["depth_unit_mm"]
        )
        depth_h = k_crop @ r @ np.linalg.inv(_matrix(depth_k))
        depth = cv2.warpPerspective(depth, depth_h, (self.size, self.size), flags=cv2.INTER_NEAREST)
        keypoints = persons["keypoints_2d"][person]
        crop_xy = _apply(h, keypoints[:, :2].astype(np.float64))
        inside = (crop_xy >= -0.5).all(axis=-1) & (crop_xy <= self.size - 0.5).all(axis=-1)
        item = {
            "color": torch.from_numpy(np.ascontiguousarray(color.transpose(2, 0, 1), dtype=np.float32)),
            "depth": torch.from_numpy(depth[None].astype(np.float32)),
            "frame_id": frame["frame_id"],
            "person": person,
            "intrinsics": torch.from_numpy(k_crop.astype(np.float32)),
            "rotation": torch.from_numpy(r.astype(np.float32)),
            "pose3d_camera": torch.from_numpy(
                (persons["pose3d_camera"][person].astype(np.float64) @ r.T).astype(np.float32)
            ),
            "keypoints": torch.from_numpy(np.concatenate([crop_xy, keypoints[:, 2:]], axis=-1).astype(np.float32)),
            "valid": torch.from_numpy(inside & (keypoints[:, 2] > 0)),
            "score": float(persons["score"][person]),
        }
        return pack_item(self.transform(item) if self.transform else item)


def _matrix(intrinsics: Intrinsics | None) -> np.ndarray:
    if intrinsics is None:
        raise ValueError("a depth image without depth intrinsics in the run's calibration")
    return intrinsics.matrix()
