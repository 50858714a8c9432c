"""The 3D student of the probe (issue 41): the teacher's residual lifter architecture (mmpose's image pose lifter,
Martinez et al., the tiny teacher's width) trained from seeded weights on a run's 2D-to-3D pairs, and scored by
MPJPE on held-out ground truth.

Pairs come from a run as a student reads it: each person's soft 2D keypoints and box are the input (framed and
normalised by `teachers.lifter`'s rule, the one the teacher's lifter was trained with), its 3D label the target:
`pose3d_soft` for the soft set (every person with a finite pose), `pose3d_hard` for the hard set (the persons in
it). A run made from ground truth (`labels synth --as-run`) gives ground-truth pairs the same way.

Training is a plain loop over the model's own forward (`extract_feat`, then the head) with mmpose's loss for
this head (MSE on the codec's normalised, root-removed target); the data are a few hundred persons, so
mmengine's Runner would spend its time encoding samples one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from orpose.configs.schema import CONFIG_DIR, LifterSpec
from orpose.evaluation.metrics import upper_body_joint_errors
from orpose.joints import coco_to_h36m_positions
from orpose.label_store.reader import LabelRun
from orpose.teachers.lifter import denormalise_lifted, normalise_for_lifter
from orpose.teachers.mm import seeded_model

__all__ = ["LiftingPairs", "pairs_from_run", "LifterStudent", "train_lifter_student", "mpjpe_mm"]


@dataclass
class LiftingPairs:
    """N persons: COCO-17 keypoints (N, 17, 3) in frame pixels, boxes (N, 4) x1 y1 x2 y2, targets (N, 17, 3)
    Human3.6M-17 root-relative millimetres."""

    keypoints: np.ndarray
    boxes: np.ndarray
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.keypoints)


def pairs_from_run(
    run: str | Path, label_set: str = "soft", damage: Callable[[LiftingPairs], LiftingPairs] | None = None
) -> LiftingPairs:
    """A run's persons as lifting pairs (see the module docstring); `damage` transforms them (the probe's
    damaged label sets)."""
    if label_set not in ("soft", "hard"):
        raise ValueError(f"label_set must be 'soft' or 'hard', got {label_set!r}")
    keypoints, boxes, targets = [], [], []
    for shard in LabelRun(run).shards():
        persons = shard.persons
        if not len(persons["box"]):
            continue
        target = persons["pose3d_soft"] if label_set == "soft" else persons["pose3d_hard"]
        keep = np.isfinite(target).all(axis=(1, 2))
        if label_set == "hard":
            keep &= persons["hard_valid"]
        keypoints.append(persons["keypoints_2d"][keep])
        boxes.append(persons["box"][keep])
        targets.append(target[keep])
    if not keypoints:
        raise ValueError(f"{run}: no {label_set} persons with 3D labels")
    pairs = LiftingPairs(
        np.concatenate(keypoints).astype(np.float64),
        np.concatenate(boxes).astype(np.float64),
        np.concatenate(targets).astype(np.float64),
    )
    return damage(pairs) if damage is not None else pairs


class LifterStudent:
    """The lifter architecture of a teacher config, seeded; `fit` trains it, `__call__` lifts like the teacher's."""

    def __init__(self, spec: LifterSpec, seed: int):
        self.model, cfg = seeded_model("mmpose", spec, seed, CONFIG_DIR)
        self.spec, self.seed = spec, seed
        codec = cfg.codec
        self.keypoints_mean = np.asarray(codec["keypoints_mean"], dtype=np.float64)
        self.keypoints_std = np.asarray(codec["keypoints_std"], dtype=np.float64)
        self.target_mean = np.asarray(codec["target_mean"], dtype=np.float64)
        self.target_std = np.asarray(codec["target_std"], dtype=np.float64)

    def inputs(self, keypoints: np.ndarray, boxes: np.ndarray) -> torch.Tensor:
        framed = normalise_for_lifter(
            coco_to_h36m_positions(np.asarray(keypoints)[..., :2]),
            boxes,
            self.spec.h36m_box_center,
            self.spec.h36m_box_scale,
            self.keypoints_mean,
            self.keypoints_std,
        )
        return torch.from_numpy(framed.reshape(len(framed), 34, 1)).float()

    def targets(self, poses_mm: np.ndarray) -> torch.Tensor:
        metres = np.asarray(poses_mm, dtype=np.float64)[:, 1:] / 1000.0  # root removed, as the codec does
        return torch.from_numpy((metres - self.target_mean) / self.target_std).float()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.model.head.forward(self.model.extract_feat(inputs))

    def fit(self, pairs: LiftingPairs, iters: int, batch_size: int = 128, lr: float = 1e-3) -> list[float]:
        """AdamW with a cosine schedule on the MSE of the normalised target; returns the loss every 50 iterations."""
        inputs, targets = self.inputs(pairs.keypoints, pairs.boxes), self.targets(pairs.targets)
        generator = torch.Generator().manual_seed(self.seed)
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=1e-4)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, iters, eta_min=lr * 0.02)
        self.model.train()
        losses = []
        for step in range(iters):
            batch = torch.randint(len(inputs), (min(batch_size, len(inputs)),), generator=generator)
            loss = torch.nn.functional.mse_loss(self.forward(inputs[batch]), targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            if step % 50 == 0 or step == iters - 1:
                losses.append(float(loss))
        self.model.eval()
        return losses

    @torch.no_grad()
    def __call__(self, keypoints: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(N, 17, 3) root-relative millimetres, Human3.6M-17, as the teacher's `Lifter` returns."""
        self.model.eval()
        output = self.forward(self.inputs(keypoints, boxes)).numpy()
        return denormalise_lifted(output, self.target_mean, self.target_std)


def train_lifter_student(spec: LifterSpec, pairs: LiftingPairs | None, seed: int, iters: int) -> LifterStudent:
    """A student trained on `pairs` (None: left at its seeded initial weights, the probe's "untrained")."""
    student = LifterStudent(spec, seed)
    if pairs is not None:
        student.fit(pairs, iters)
    return student


def mpjpe_mm(lifted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Root-relative MPJPE (mm) over the 17 joints and over the upper body (`evaluation.metrics`), truth in
    Human3.6M-17 root-relative mm."""
    lifted, truth = np.asarray(lifted, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    all_joints = float(np.linalg.norm(lifted - truth, axis=-1).mean())
    return {"mpjpe_mm": all_joints, "mpjpe_upper_body_mm": float(upper_body_joint_errors(truth, lifted).mean())}
