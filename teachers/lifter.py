"""2D-to-3D lifter: mmpose's image pose lifter (the residual MLP of Martinez et al. 2017).

Input rule (what the checkpoint was trained with, Human3.6M):
1. COCO-17 keypoints become Human3.6M-17 (`joints.coco_to_h36m_positions`; confidences by
   `joints.coco_to_h36m_confidences`). Feeding COCO order is a classic bug (mmpose #886, #2121).
2. Each person's 2D pose is moved into H36M's framing: (p - box centre) / max(box w, h) * 400 +
   (528, 427), as mmpose's `inference_pose_lifter(norm_pose_2d=True)` does with H36M's stats.
3. The codec's normalisation: (p - keypoints_mean) / keypoints_std, per joint.
Output: (P, 17, 3) root-relative joints in millimetres, H36M order, camera axes (x right, y down,
z away from the camera), pelvis at 0.

Hard input: joints that failed the keypoint threshold are set to 0 after step 3, i.e. to the
training set's mean position of that joint (`thresholds.hard_dropped_joint = "mean_pose"`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from orpose.configs.schema import LifterSpec
from orpose.joints import coco_to_h36m_confidences, coco_to_h36m_positions
from orpose.teachers.mm import forward_context, load_model

__all__ = ["Lifter", "normalise_for_lifter", "denormalise_lifted"]


def normalise_for_lifter(h36m_xy: np.ndarray, boxes: np.ndarray, box_center, box_scale, mean, std) -> np.ndarray:
    """(P, 17, 2) frame pixels -> (P, 17, 2) lifter input units (steps 2 and 3 above)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    center = (boxes[:, :2] + boxes[:, 2:]) / 2
    size = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    framed = (h36m_xy - center[:, None]) / size[:, None, None] * box_scale + np.asarray(box_center)
    return (framed - mean) / std


def denormalise_lifted(output: np.ndarray, target_mean: np.ndarray, target_std: np.ndarray) -> np.ndarray:
    """(P, 16, 3) normalised network output -> (P, 17, 3) root-relative millimetres (root = 0)."""
    metres = output * target_std + target_mean
    return np.insert(metres, 0, 0.0, axis=1) * 1000.0


class Lifter:
    """`__call__(keypoints (P,17,3) COCO, boxes (P,4), keep (P,17) bool or None) -> (P,17,3) mm`."""

    def __init__(
        self,
        spec: LifterSpec,
        checkpoint: str | Path,
        device: torch.device,
        config_root: Path | None = None,
        *,
        precision: str = "fp32",
    ):
        self.spec = spec
        self.device = device
        self.model, cfg, self.checkpoint_sha256 = load_model("mmpose", spec, checkpoint, device, config_root)
        self.precision = precision
        codec = cfg.codec
        self.keypoints_mean = np.asarray(codec["keypoints_mean"], dtype=np.float64)
        self.keypoints_std = np.asarray(codec["keypoints_std"], dtype=np.float64)
        self.target_mean = np.asarray(codec["target_mean"], dtype=np.float64)
        self.target_std = np.asarray(codec["target_std"], dtype=np.float64)
        self.forward_passes = 0

    def prepare(self, keypoints: np.ndarray, boxes: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
        """The network input (P, 34, 1) for COCO keypoints; dropped joints (keep False) -> 0."""
        keypoints = np.asarray(keypoints, dtype=np.float64).reshape(-1, 17, 3)
        h36m_xy = coco_to_h36m_positions(keypoints[..., :2])
        normalised = normalise_for_lifter(
            h36m_xy, boxes, self.spec.h36m_box_center, self.spec.h36m_box_scale, self.keypoints_mean, self.keypoints_std
        )
        if keep is not None:
            h36m_keep = coco_to_h36m_confidences(np.asarray(keep, dtype=np.float64)) > 0.5
            normalised = np.where(h36m_keep[..., None], normalised, 0.0)
        return normalised.reshape(len(normalised), 34, 1)  # x0, y0, x1, y1, ... as the codec reshapes

    def __call__(self, keypoints: np.ndarray, boxes: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
        inputs = self.prepare(keypoints, boxes, keep)
        if len(inputs) == 0:
            return np.zeros((0, 17, 3), np.float32)
        outputs = []
        for start in range(0, len(inputs), self.spec.poses_per_forward):
            batch = torch.from_numpy(inputs[start : start + self.spec.poses_per_forward]).float().to(self.device)
            with forward_context(self.device, self.precision):
                outputs.append(self.model.head.forward(self.model.extract_feat(batch)).float().cpu().numpy())
            self.forward_passes += 1
        return denormalise_lifted(np.concatenate(outputs), self.target_mean, self.target_std).astype(np.float32)
