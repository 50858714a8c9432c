"""Transforms of a whole training item (`transform=` of `PoseLabelDataset` and `PoseLabelStream`), and the
collate function and sampler that student trainers need around them.

A transform receives the item (the image and every target) and returns it, so that an augmentation moves
the image and its targets together. `HorizontalFlip` is the one the seeds' students use; it is also the
known answer that pins the conventions down: the image mirrored, x of a pixel-index coordinate becomes
w - 1 - x and of a pixel-edge coordinate w - x, the person's left and right joints swap (COCO-17 for 2D,
Human3.6M-17 for 3D, whose x axis points right in the camera and is negated).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch.utils.data import WeightedRandomSampler

from orpose.joints import COCO_FLIP_PAIRS, H36M_FLIP_PAIRS, flip_permutation
from orpose.label_store.packing import pack_item

__all__ = ["HorizontalFlip", "collate_poses", "person_count_sampler"]

_COCO_PERM = torch.from_numpy(flip_permutation(17, COCO_FLIP_PAIRS))
_H36M_PERM = torch.from_numpy(flip_permutation(17, H36M_FLIP_PAIRS))
_PER_COCO_JOINT = ("hard_mask", "depth_flag", "pose3d_room_hard")
_POSES_3D = ("pose3d_soft", "pose3d_hard", "pose3d_camera")  # Human3.6M-17
_COCO_POSES_3D = ("pose3d_room_camera",)  # the multi-view 3D: COCO-17


class HorizontalFlip:
    """Mirror the item left to right with probability `p` (drawn from `rng`, or always when p == 1)."""

    def __init__(self, p: float = 1.0, seed: int | None = None):
        self.p, self.rng = p, np.random.default_rng(seed)

    def __call__(self, item: dict) -> dict:
        if self.p < 1.0 and self.rng.random() >= self.p:
            return item
        width = item["image"].shape[-1]
        out = dict(item, image=torch.flip(item["image"], dims=(-1,)))
        boxes = item["boxes"].clone()
        boxes[:, 0], boxes[:, 2] = width - item["boxes"][:, 2], width - item["boxes"][:, 0]
        out["boxes"] = boxes
        keypoints = item["keypoints"][:, _COCO_PERM].clone()
        keypoints[..., 0] = width - 1 - keypoints[..., 0]
        out["keypoints"] = keypoints
        for name in _PER_COCO_JOINT:
            if name in item:
                out[name] = item[name][:, _COCO_PERM]
        for names, permutation in ((_POSES_3D, _H36M_PERM), (_COCO_POSES_3D, _COCO_PERM)):
            for name in names:
                if name in item:
                    pose = item[name][:, permutation].clone()
                    pose[..., 0] = -pose[..., 0]
                    out[name] = pose
        out["flipped"] = True
        return out


# Tensors an item holds once (images, camera matrices), stacked in a batch; every other tensor is per person.
PER_ITEM = ("image", "image_full", "depth", "depth_full", "intrinsics", "depth_intrinsics")


def collate_poses(items: Sequence[dict]) -> dict:
    """A batch of items with ragged person counts: the per-item tensors (`PER_ITEM`: images, intrinsics)
    stacked (images must share a size: one factor per batch, or a resize in `transform`), every per-person
    target padded to the batch's most persons, and `person_mask` (B, P) true where a person is real. Strings
    and factors become lists. The batch's tensors are views of one storage (`pack_item`), each image copied
    once."""
    for key in PER_ITEM:
        shapes = {tuple(item[key].shape) for item in items if key in item}
        if len(shapes) > 1:
            raise ValueError(
                f"collate_poses: the batch's {key} tensors differ in size ({sorted(shapes)}): use one factor per "
                "batch, or a transform that resizes"
            )
    most = max((len(item["boxes"]) for item in items), default=0)
    mask = torch.zeros(len(items), most, dtype=torch.bool)
    for i, item in enumerate(items):
        mask[i, : len(item["boxes"])] = True
    batch, stacked = {"person_mask": mask}, []
    for key, value in items[0].items():
        if key in PER_ITEM and isinstance(value, torch.Tensor):
            batch[key] = [item[key] for item in items]  # stacked as it is packed (one copy)
            stacked.append(key)
        elif isinstance(value, torch.Tensor):  # per person: (P, ...)
            padded = value.new_zeros((len(items), most, *value.shape[1:]))
            for i, item in enumerate(items):
                padded[i, : len(item[key])] = item[key]
            batch[key] = padded
        else:
            batch[key] = [item[key] for item in items]
    return pack_item(batch, stacked=tuple(stacked))  # one storage: one shared-memory segment for a DataLoader worker


def person_count_sampler(dataset, num_samples: int | None = None, most: int = 8, seed: int = 0):
    """A sampler over a `PoseLabelDataset` that draws frames with as many persons equally often (seed 002
    balances its training set by person count): each frame's weight is one over the number of frames with
    its person count (counts above `most` pooled), from the run index, without reading a shard."""
    counts = np.minimum(dataset.source.index.persons[dataset.positions], most)
    frequency = np.bincount(counts, minlength=most + 1)
    weights = 1.0 / frequency[counts]
    generator = torch.Generator().manual_seed(seed)
    return WeightedRandomSampler(
        torch.as_tensor(weights, dtype=torch.double), num_samples or len(weights), replacement=True, generator=generator
    )
