"""A PyTorch Dataset for student trainers: images at a chosen resolution with their targets.

Each item is one labelled frame: the color or the depth image, down-sampled by `factor` (1, 8,
10, 12, any float, or "random": seed 000's schedule: 30 % no down-sampling, 35 % a factor drawn
uniformly in [2, 8], 35 % in [8, 12]), color with bilinear and depth with bicubic interpolation
(seed 000 and 002), and the soft and hard targets with their coordinates scaled exactly: a new
image of size (round(W / f), round(H / f)) scales x by s = W' / W, keypoints (pixel-index
coordinates) as (x + 0.5) * s - 0.5 and boxes (pixel-edge coordinates) as x * s.
Depth images are in millimetres, or mapped to [0, 255] over `depth_range_mm` (seed 002's students).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from orpose.frames.decode import decode_color, decode_depth
from orpose.frames.sources import depth_counts_to_mm
from orpose.label_store.reader import LabelRun

__all__ = ["PoseLabelDataset", "scale_keypoints", "scale_boxes", "scaled_size", "draw_factor"]


def scaled_size(width: int, height: int, factor: float) -> tuple[int, int]:
    return max(1, int(round(width / factor))), max(1, int(round(height / factor)))


def scale_keypoints(xy: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Pixel-index coordinates under a resize by (sx, sy): pixel centres map to pixel centres."""
    out = np.array(xy, dtype=np.float64, copy=True)
    out[..., 0] = (out[..., 0] + 0.5) * sx - 0.5
    out[..., 1] = (out[..., 1] + 0.5) * sy - 0.5
    return out


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


class PoseLabelDataset(Dataset):
    """Items: {"image": (C, h, w) float32 tensor, "frame_id", "factor", "boxes" (P, 4),
    "keypoints" (P, 17, 3) soft set (x, y, confidence), "hard_mask" (P, 17), "hard_valid" (P,),
    and for depth items "depth_flag" (P, 17)}. Coordinates are those of the returned image."""

    def __init__(
        self,
        run: LabelRun | str,
        modality: str = "color",
        factor: float | str = 1.0,
        seed: int = 0,
        depth_range_mm: tuple[float, float] | None = (0.0, 6000.0),
    ):
        if modality not in ("color", "depth"):
            raise ValueError(f"modality must be 'color' or 'depth', got {modality!r}")
        if factor != "random" and (not isinstance(factor, (int, float)) or factor < 1):
            raise ValueError(f"factor must be >= 1 or 'random', got {factor!r}")
        self.run = run if isinstance(run, LabelRun) else LabelRun(run)
        self.modality, self.factor, self.seed, self.epoch = modality, factor, seed, 0
        self.depth_range_mm = depth_range_mm
        self.frame_ids = [f.frame_id for f in self.run if f.labelled and (modality == "color" or f.frame["depth_path"])]

    def __len__(self) -> int:
        return len(self.frame_ids)

    def __getitem__(self, index: int) -> dict:
        labels = self.run.get(self.frame_ids[index])
        frame, persons = labels.frame, labels.persons
        factor = (
            draw_factor(np.random.default_rng([self.seed, self.epoch, index]))
            if self.factor == "random"
            else float(self.factor)
        )
        if self.modality == "color":
            image = decode_color(frame["color_path"], frame["frame_id"])[:, :, ::-1].astype(np.float32)  # RGB
            keypoints, boxes = persons["keypoints_2d"][..., :2], persons["box"]
            interpolation = cv2.INTER_LINEAR
        else:
            image = depth_counts_to_mm(decode_depth(frame["depth_path"], frame["frame_id"]), frame["depth_unit_mm"])
            keypoints = persons["depth_keypoints"]
            ratio = frame["depth_size"][0] / frame["color_size"][0]
            boxes = persons["box"] * ratio
            interpolation = cv2.INTER_CUBIC
        h, w = image.shape[:2]
        new_w, new_h = scaled_size(w, h, factor)
        if (new_w, new_h) != (w, h):
            image = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
        if self.modality == "depth" and self.depth_range_mm is not None:
            lo, hi = self.depth_range_mm
            image = np.clip((image - lo) / (hi - lo), 0.0, 1.0) * 255.0
        sx, sy = new_w / w, new_h / h
        image = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)),
            "frame_id": frame["frame_id"],
            "factor": factor,
            "boxes": torch.from_numpy(scale_boxes(boxes, sx, sy).astype(np.float32)),
            "keypoints": torch.from_numpy(
                np.concatenate([scale_keypoints(keypoints, sx, sy), persons["keypoints_2d"][..., 2:]], axis=-1).astype(
                    np.float32
                )
            ),
            "hard_mask": torch.from_numpy(persons["hard_mask"].copy()),
            "hard_valid": torch.from_numpy(persons["hard_valid"].copy()),
        }
        if self.modality == "depth":
            item["depth_flag"] = torch.from_numpy(persons["depth_flag"].copy())
        return item
