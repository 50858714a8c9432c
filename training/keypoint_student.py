"""The 2D students of the probe (issue 41): the top-down HRNetV2 of `configs/students/` (the tiny teacher's
keypoint architecture) trained from seeded weights on a run's person crops, color at a down-sampling factor or
depth (seed 000's color student at factor 1 and 8, seed 002's low-resolution depth student), and scored with
ground-truth boxes through the teacher's own keypoint code.

Data come through the project's reader, `PoseLabelDataset(run, modality, factor, upsample=True)`: the image
down-sampled by the factor and brought back to its size (seed 000; depth bicubic, normalised to [0, 255] as
seed 002), the keypoints on its grid (depth: the color-to-depth transferred ones). Each person is cropped as the
teacher crops (`teachers.keypoints.box_to_crop`, `teachers.tta.crop_affine`); its keypoints' loss weights are
the teacher's confidence (soft set), its hard mask (hard set; the reader keeps the hard persons), times "the
depth under it is valid" for depth. A run made from ground truth gives weight 1 to every labelled keypoint.

Targets are mmpose's codec of the config (`MSRAHeatmap`): a Gaussian at every keypoint of weight > 0, the loss
mmpose's keypoint MSE with the weight per keypoint. (mmpose's `GenerateTarget` draws no Gaussian for a
visibility below 0.5, so handing it soft confidences as visibilities would train low-confidence keypoints
towards an empty heatmap; here the Gaussian is drawn and the confidence weighs it.) Training is a plain loop
on crops cut once (mirrored copies included) with a random scale and rotation per batch; a student is saved
as a checkpoint and read back by `TopDownKeypoints`, the teacher's keypoint stage, for scoring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
import torch

from orpose.configs.schema import CONFIG_DIR, KeypointSpec
from orpose.joints import flip_permutation
from orpose.teachers.keypoints import box_to_crop
from orpose.teachers.mm import seeded_model
from orpose.teachers.tta import crop_affine

__all__ = [
    "FrameLabels",
    "PersonCrops",
    "frames_at_factor",
    "crop_persons",
    "KeypointStudent",
    "train_keypoint_student",
]


@dataclass
class FrameLabels:
    """One frame as a top-down student sees it: the image (H, W, 3) float32 in decoded (BGR) channel order, depth
    repeated in the three; boxes (P, 4) x1 y1 x2 y2 and keypoints (P, 17, 2) on its grid; weights (P, 17)."""

    frame_id: str
    image: np.ndarray
    boxes: np.ndarray
    keypoints: np.ndarray
    weights: np.ndarray


def frames_at_factor(
    run: str | Path,
    modality: str = "color",
    factor: float = 1.0,
    label_set: str = "soft",
    damage: Callable[[FrameLabels], FrameLabels] | None = None,
) -> Iterator[FrameLabels]:
    """The run's labelled frames (with depth, for `modality="depth"`) through `PoseLabelDataset` (see the
    module docstring); `damage` changes each frame's labels (the probe's damaged sets)."""
    from orpose.label_store.dataset import PoseLabelDataset

    if modality not in ("color", "depth"):
        raise ValueError(f"modality must be 'color' or 'depth', got {modality!r}")
    dataset = PoseLabelDataset(run, modality=modality, factor=factor, upsample=True, label_set=label_set)
    for index in range(len(dataset)):
        item = dataset[index]
        image = item["image"].numpy()
        image = (
            np.repeat(image[0][..., None], 3, axis=2) if modality == "depth" else image.transpose(1, 2, 0)[..., ::-1]
        )
        keypoints = item["keypoints"].numpy().astype(np.float64)
        weights = (
            np.clip(keypoints[..., 2], 0.0, 1.0)
            if label_set == "soft"
            else item["hard_mask"].numpy().astype(np.float64)
        )
        if modality == "depth":
            weights = weights * (item["depth_flag"].numpy() == 0)
        weights = np.where(np.isfinite(keypoints[..., :2]).all(-1), weights, 0.0)
        frame = FrameLabels(
            str(item["frame_id"]),
            np.ascontiguousarray(image, dtype=np.float32),
            item["boxes"].numpy().astype(np.float64),
            np.nan_to_num(keypoints[..., :2]),
            weights,
        )
        yield damage(frame) if damage is not None else frame


@dataclass
class PersonCrops:
    """N person crops: images (N, h, w, 3) float32 (BGR, as the frames), keypoints (N, 17, 2) in crop pixels,
    weights (N, 17). `mirrored()` appends each crop's mirror image with its keypoints' sides swapped."""

    images: np.ndarray
    keypoints: np.ndarray
    weights: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def mirrored(self) -> PersonCrops:
        width = self.images.shape[2]
        perm = flip_permutation()
        flipped = self.keypoints[:, perm].copy()
        flipped[..., 0] = width - 1 - flipped[..., 0]
        return PersonCrops(
            np.concatenate([self.images, self.images[:, :, ::-1]]),
            np.concatenate([self.keypoints, flipped]),
            np.concatenate([self.weights, self.weights[:, perm]]),
        )


def crop_persons(frames: Iterator[FrameLabels] | list[FrameLabels], input_size: tuple[int, int]) -> PersonCrops:
    """Every person of `frames` cropped as the teacher crops it, `input_size` (w, h); persons without any
    weighted keypoint are left out."""
    in_w, in_h = input_size
    images, keypoints, weights = [], [], []
    for frame in frames:
        for box, points, weight in zip(frame.boxes, frame.keypoints, frame.weights):
            if not (weight > 0).any():
                continue
            center, size = box_to_crop(box, in_w / in_h)
            affine = crop_affine(center, size, input_size)
            images.append(cv2.warpAffine(frame.image, affine, (in_w, in_h), flags=cv2.INTER_LINEAR))
            keypoints.append(points @ affine[:, :2].T + affine[:, 2])
            weights.append(weight)
    if not images:
        raise ValueError("no person with a labelled keypoint to crop")
    return PersonCrops(np.stack(images), np.stack(keypoints), np.stack(weights))


def _random_affines(
    count: int, generator: torch.Generator, scale: float, rotation_deg: float, aspect: float
) -> torch.Tensor:
    """(count, 2, 3) `affine_grid` matrices: a random zoom in [1 - scale, 1 + scale] and a rotation about the
    centre, in pixels of an image of aspect w / h (`affine_grid`'s coordinates are normalised per axis, so the
    rotation is S^-1 R S with S = diag(w, h) / 2)."""
    zoom = 1.0 + (torch.rand(count, generator=generator) * 2 - 1) * scale
    angle = (torch.rand(count, generator=generator) * 2 - 1) * math.radians(rotation_deg)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    zeros = torch.zeros(count)
    return torch.stack([torch.stack([cos, -sin / aspect, zeros], 1), torch.stack([sin * aspect, cos, zeros], 1)], 1)


class KeypointStudent:
    """The top-down architecture of a keypoint spec (`configs/students/`' model), seeded; `fit` trains it,
    `save` writes a checkpoint that `TopDownKeypoints` loads."""

    def __init__(self, spec: KeypointSpec, seed: int):
        from mmpose.registry import KEYPOINT_CODECS

        self.model, cfg = seeded_model("mmpose", spec, seed, CONFIG_DIR)
        self.spec, self.seed = spec, seed
        self.codec = KEYPOINT_CODECS.build(dict(cfg.codec))
        self.input_size = tuple(cfg.codec["input_size"])  # (w, h)
        preprocessor = self.model.data_preprocessor
        self.bgr_to_rgb = bool(preprocessor._channel_conversion)
        self.mean, self.std = preprocessor.mean.clone(), preprocessor.std.clone()

    def _inputs(self, images: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
        if self.bgr_to_rgb:
            x = x[:, [2, 1, 0]]
        return (x - self.mean) / self.std

    def _targets(self, crops: PersonCrops) -> tuple[torch.Tensor, torch.Tensor]:
        heatmaps, weights = [], []
        for points, weight in zip(crops.keypoints, crops.weights):
            encoded = self.codec.encode(points[None], (weight[None] > 0).astype(np.float32))
            heatmaps.append(encoded["heatmaps"])
            weights.append(encoded["keypoint_weights"][0] * weight)  # 0 where the Gaussian fell off the heatmap
        return torch.from_numpy(np.stack(heatmaps)).float(), torch.from_numpy(np.stack(weights)).float()

    def fit(
        self,
        crops: PersonCrops,
        iters: int,
        batch_size: int = 16,
        lr: float = 3e-3,
        scale: float = 0.25,
        rotation_deg: float = 30.0,
    ) -> list[float]:
        """AdamW, linear warm-up then cosine, on the weighted heatmap MSE; every batch is zoomed and rotated at
        random (images and target heatmaps alike). Returns the loss every 25 iterations."""
        crops = crops.mirrored()
        inputs = self._inputs(crops.images)
        targets, weights = self._targets(crops)
        generator = torch.Generator().manual_seed(self.seed)
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=1e-4)
        warmup = max(1, iters // 10)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda step: (
                (step + 1) / warmup
                if step < warmup
                else 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, iters - warmup)))
            ),
        )
        self.model.train()
        losses = []
        for step in range(iters):
            batch = torch.randint(len(inputs), (min(batch_size, len(inputs)),), generator=generator)
            theta = _random_affines(len(batch), generator, scale, rotation_deg, self.input_size[0] / self.input_size[1])
            x = torch.nn.functional.grid_sample(
                inputs[batch], torch.nn.functional.affine_grid(theta, list(inputs[batch].shape), align_corners=False),
                align_corners=False,
            )  # fmt: skip
            y = torch.nn.functional.grid_sample(
                targets[batch], torch.nn.functional.affine_grid(theta, list(targets[batch].shape), align_corners=False),
                align_corners=False,
            )  # fmt: skip
            heatmaps = self.model.head.forward(self.model.extract_feat(x))
            loss = (((heatmaps - y) ** 2).mean(dim=(2, 3)) * weights[batch]).mean()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 10.0)
            optimizer.step()
            schedule.step()
            if step % 25 == 0 or step == iters - 1:
                losses.append(float(loss))
        self.model.eval()
        return losses

    def save(self, path: str | Path) -> Path:
        """A checkpoint in the teachers' format (`{"state_dict", "meta"}`), loaded strictly by `load_model`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        torch.save({"state_dict": state, "meta": {"student": self.spec.mm_config, "seed": self.seed}}, path)
        return path

    def predictor(self, path: str | Path):
        """The saved student as the teacher's keypoint stage, without test-time augmentation."""
        from orpose.teachers.keypoints import TopDownKeypoints

        plain = replace(self.spec, flip=False, box_scales=(1.0,))
        return TopDownKeypoints(plain, self.save(path), torch.device("cpu"), CONFIG_DIR)


def train_keypoint_student(
    spec: KeypointSpec, crops: PersonCrops | None, seed: int, iters: int, checkpoint: str | Path
):
    """A trained student (None: left at its seeded initial weights, the probe's "untrained") as a predictor:
    `predictor(images, boxes) -> list[PersonKeypoints]`."""
    student = KeypointStudent(spec, seed)
    if crops is not None:
        student.fit(crops, iters)
    return student.predictor(checkpoint)
