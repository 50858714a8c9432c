"""Top-down keypoints: an mmpose heatmap model (HRNet) on every person box, batched, with TTA.

mmpose's inferencer runs one image at a time (mmpose issue 2994); here the crops of all boxes of
all frames in a batch go through the network together. Test-time augmentation: each box is
cropped at several sizes (`box_scales`) and, with `flip`, mirrored. Every view's heatmaps are
resampled exactly onto the reference view's grid (the unflipped crop at the first scale; mirrored
views have their left/right channels swapped) and averaged where each view has data, then decoded
once. Each view is also decoded alone: the spread of a keypoint across the views is kept as its
uncertainty, in frame pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from orpose.configs.schema import KeypointSpec
from orpose.joints import flip_permutation
from orpose.teachers.mm import compiled, forward_context, load_model
from orpose.teachers.tta import align_heatmaps, crop_affine, decode_heatmaps, flip_affine

__all__ = ["PersonKeypoints", "TopDownKeypoints", "box_to_crop"]

BOX_PADDING = 1.25  # mmpose's top-down crops: the box enlarged by 25 %


@dataclass
class PersonKeypoints:
    """Keypoints of the persons of one frame."""

    keypoints: np.ndarray  # (P, 17, 3): x, y in frame pixels (pixel-index coordinates), confidence
    spread: np.ndarray  # (P, 17): RMS distance in pixels between the views' decoded positions


def box_to_crop(box: np.ndarray, aspect: float, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Centre (pixel-index coordinates) and (w, h) of the crop for an xyxy box (pixel-edge
    coordinates): padded by 25 %, widened or heightened to the model's aspect ratio (w / h),
    then scaled. The half-pixel change of convention makes the crop of a mirrored frame the exact
    mirror of the crop of the frame."""
    x1, y1, x2, y2 = [float(v) for v in box]
    center = np.array([(x1 + x2) / 2 - 0.5, (y1 + y2) / 2 - 0.5])
    w, h = (x2 - x1) * BOX_PADDING, (y2 - y1) * BOX_PADDING
    if w > h * aspect:
        h = w / aspect
    else:
        w = h * aspect
    return center, np.array([w, h]) * scale


class TopDownKeypoints:
    """`__call__(images, boxes_per_image) -> list[PersonKeypoints]`."""

    def __init__(
        self,
        spec: KeypointSpec,
        checkpoint: str | Path,
        device: torch.device,
        config_root: Path | None = None,
        *,
        precision: str = "fp32",
        channels_last: bool = False,
        compile: bool = False,
    ):
        self.spec = spec
        self.device = device
        self.model, cfg, self.checkpoint_sha256 = load_model(
            "mmpose", spec, checkpoint, device, config_root, channels_last
        )
        self.precision, self.channels_last = precision, channels_last
        self.compile = compile
        self.heatmaps = compiled(lambda x: self.model.head.forward(self.model.extract_feat(x)), compile)
        self.input_size = tuple(cfg.codec["input_size"])  # (w, h)
        self.heatmap_size = tuple(cfg.codec["heatmap_size"])
        self.flip_perm = flip_permutation()
        self.forward_passes = 0

    def _heatmap_affine(self, input_affine: np.ndarray) -> np.ndarray:
        sx = self.heatmap_size[0] / self.input_size[0]
        sy = self.heatmap_size[1] / self.input_size[1]
        return np.diag([sx, sy]) @ input_affine

    def _forward(self, crops: np.ndarray) -> torch.Tensor:
        count = len(crops)
        if self.compile and count < self.spec.crops_per_forward:
            # a compiled model has one graph per input shape: every forward gets crops_per_forward crops (the
            # last one padded with black crops, dropped below), or each person count would compile anew
            crops = np.concatenate(
                [crops, np.zeros((self.spec.crops_per_forward - count, *crops.shape[1:]), crops.dtype)]
            )
        # The model's own preprocessing (channel order, mean, std), applied on its device.
        preprocessor = self.model.data_preprocessor
        x = torch.from_numpy(crops).to(self.device).permute(0, 3, 1, 2).float()
        if preprocessor._channel_conversion:
            x = x[:, [2, 1, 0]]
        x = (x - preprocessor.mean) / preprocessor.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with forward_context(self.device, self.precision):
            heatmaps = self.heatmaps(x)
        self.forward_passes += 1
        return heatmaps[:count].float().cpu()

    def __call__(self, images: list[np.ndarray], boxes: list[np.ndarray]) -> list[PersonKeypoints]:
        in_w, in_h = self.input_size
        crops, view_affines, owners = [], [], []  # owners: (frame, person, view)
        num_views = len(self.spec.box_scales) * (2 if self.spec.flip else 1)
        for f, (image, frame_boxes) in enumerate(zip(images, boxes)):
            for p, box in enumerate(np.asarray(frame_boxes).reshape(-1, 4)):
                v = 0
                for scale in self.spec.box_scales:
                    center, size = box_to_crop(box, in_w / in_h, scale)
                    affine = crop_affine(center, size, self.input_size)
                    crop = cv2.warpAffine(image, affine, (in_w, in_h), flags=cv2.INTER_LINEAR)
                    crops.append(crop)
                    view_affines.append((affine, False))
                    owners.append((f, p, v))
                    v += 1
                    if self.spec.flip:
                        crops.append(np.ascontiguousarray(crop[:, ::-1]))
                        view_affines.append((flip_affine(affine, in_w), True))
                        owners.append((f, p, v))
                        v += 1
        results = [
            PersonKeypoints(
                np.zeros((len(np.asarray(b).reshape(-1, 4)), 17, 3), np.float32),
                np.zeros((len(np.asarray(b).reshape(-1, 4)), 17), np.float32),
            )
            for b in boxes
        ]
        if not crops:
            return results

        chunks = [
            self._forward(np.array(crops[s : s + self.spec.crops_per_forward]))
            for s in range(0, len(crops), self.spec.crops_per_forward)
        ]
        heatmaps = torch.cat(chunks)
        flipped = torch.tensor([is_flip for _, is_flip in view_affines])
        heatmaps[flipped] = heatmaps[flipped][:, self.flip_perm]  # a mirrored crop's left is the person's right

        hm_affines = np.array([self._heatmap_affine(a) for a, _ in view_affines])
        # Reference grid: view 0's heatmap grid moved by (1 - stride_ratio) / 2 along x, the one grid
        # that a horizontal flip maps onto itself. Plain and flipped views are then resampled alike,
        # and a mirrored frame gets the mirror image of this frame's average.
        ref_affines = hm_affines[[i - owners[i][2] for i in range(len(owners))]].copy()
        ref_affines[:, 0, 2] -= (1 - self.heatmap_size[0] / self.input_size[0]) / 2
        aligned, covered = align_heatmaps(heatmaps, hm_affines, ref_affines)

        people = len(owners) // num_views
        aligned = aligned.reshape(people, num_views, *aligned.shape[1:])
        covered = covered.reshape(people, num_views, *covered.shape[1:])
        mean = (aligned * covered).sum(1) / covered.sum(1).clamp(min=1.0)
        locations, values = decode_heatmaps(mean.numpy())
        per_view_locations, _ = decode_heatmaps(aligned.reshape(-1, *aligned.shape[2:]).numpy())
        per_view_locations = per_view_locations.reshape(people, num_views, 17, 2)

        for k in range(people):
            f, p, _ = owners[k * num_views]
            to_image = np.linalg.inv(np.vstack([ref_affines[k * num_views], [0, 0, 1]]))[:2]
            xy = locations[k] @ to_image[:, :2].T + to_image[:, 2]
            views_xy = per_view_locations[k] @ to_image[:, :2].T + to_image[:, 2]
            spread = np.sqrt(((views_xy - views_xy.mean(0)) ** 2).sum(-1).mean(0))
            results[f].keypoints[p] = np.concatenate([xy, values[k][:, None]], axis=1)
            results[f].spread[p] = spread
        return results
