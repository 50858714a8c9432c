"""Test-time augmentation maths, pure functions: view geometry, box merging, heatmap alignment.

Conventions.
- Boxes are (x1, y1, x2, y2) in continuous pixel-edge coordinates (mmdet's): pixel i spans
  [i, i+1), so resizing by s maps x -> s*x and a horizontal flip of a W-wide image maps
  x -> W - x.
- Keypoints and heatmaps use pixel-index coordinates (mmpose's): a crop's input pixel i sits at
  coordinate i and heatmap index j at input coordinate j * stride. An affine matrix maps image
  coordinates to heatmap coordinates of one view.

Not for: running models (see `teachers.detector`, `teachers.keypoints`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from orpose.frames.geometry import box_iou

__all__ = [
    "DetectionView",
    "detection_views",
    "boxes_to_view",
    "boxes_from_view",
    "merge_nms",
    "merge_box_voting",
    "merge_wbf",
    "MERGERS",
    "crop_affine",
    "flip_affine",
    "align_heatmaps",
    "decode_heatmaps",
]


@dataclass(frozen=True)
class DetectionView:
    """One test-time view of a frame: resized to (width, height), maybe flipped."""

    width: int
    height: int
    scale_x: float  # view width / frame width
    scale_y: float  # view height / frame height
    flip: bool


def detection_views(
    frame_w: int, frame_h: int, scales: tuple[int, ...], max_side: int, flip: bool
) -> list[DetectionView]:
    """Views of a frame: for each scale, the shorter side set to it (longer side capped at
    max_side, aspect kept, as mmdet's keep_ratio Resize), unflipped then flipped."""
    views = []
    for short in scales:
        factor = min(short / min(frame_w, frame_h), max_side / max(frame_w, frame_h))
        width, height = int(frame_w * factor + 0.5), int(frame_h * factor + 0.5)
        for flipped in (False, True) if flip else (False,):
            views.append(DetectionView(width, height, width / frame_w, height / frame_h, flipped))
    return views


def boxes_to_view(boxes: np.ndarray, view: DetectionView) -> np.ndarray:
    """Frame boxes (N, 4) -> the same boxes in the view."""
    out = np.asarray(boxes, dtype=np.float64) * [view.scale_x, view.scale_y, view.scale_x, view.scale_y]
    if view.flip:
        out = np.stack([view.width - out[:, 2], out[:, 1], view.width - out[:, 0], out[:, 3]], axis=1)
    return out


def boxes_from_view(boxes: np.ndarray, view: DetectionView) -> np.ndarray:
    """View boxes (N, 4) -> frame boxes; the exact inverse of `boxes_to_view`."""
    out = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if view.flip:
        out = np.stack([view.width - out[:, 2], out[:, 1], view.width - out[:, 0], out[:, 3]], axis=1)
    return out / [view.scale_x, view.scale_y, view.scale_x, view.scale_y]


def _order(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-np.asarray(scores), kind="stable")  # ties: the earlier view wins, deterministically


def _nms_keep(boxes: np.ndarray, scores: np.ndarray, iou: float) -> tuple[list[int], list[list[int]]]:
    """Greedy NMS; returns kept indices and, per kept box, the indices it suppressed (itself first)."""
    order = _order(scores)
    ious = box_iou(boxes, boxes)
    alive = np.ones(len(boxes), dtype=bool)
    keep, members = [], []
    for i in order:
        if not alive[i]:
            continue
        group = [i] + [j for j in order if j != i and alive[j] and ious[i, j] >= iou]
        alive[group] = False
        keep.append(int(i))
        members.append([int(j) for j in group])
    return keep, members


def merge_nms(boxes: np.ndarray, scores: np.ndarray, iou: float, num_views: int = 1):
    """Plain NMS over all views. Returns (boxes, scores, representative index per merged box)."""
    keep, _ = _nms_keep(boxes, scores, iou)
    return (
        np.asarray(boxes, dtype=np.float64).reshape(-1, 4)[keep],
        np.asarray(scores, dtype=np.float64)[keep],
        np.array(keep, dtype=np.int64),
    )


def merge_box_voting(boxes: np.ndarray, scores: np.ndarray, iou: float, num_views: int = 1):
    """NMS, then each kept box becomes the score-weighted mean of the boxes it suppressed
    (Detectron's BBOX_VOTE, 'ID' scoring: the kept box keeps its score)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64)
    keep, members = _nms_keep(boxes, scores, iou)
    voted = np.array([(boxes[m] * scores[m, None]).sum(0) / scores[m].sum() for m in members]).reshape(-1, 4)
    return voted, scores[keep], np.array(keep, dtype=np.int64)


def merge_wbf(boxes: np.ndarray, scores: np.ndarray, iou: float, num_views: int = 1):
    """Weighted boxes fusion (Solovyev et al. 2021): greedy clusters by score; a cluster's box is
    the score-weighted mean of its members, its score the mean member score scaled by
    min(members, views) / views, so a person seen in one view of many loses confidence."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64)
    clusters: list[list[int]] = []
    fused: list[np.ndarray] = []
    for i in _order(scores):
        if fused:
            ious = box_iou(boxes[i], np.array(fused))[0]
            best = int(np.argmax(ious))
            if ious[best] > iou:
                clusters[best].append(int(i))
                m = clusters[best]
                fused[best] = (boxes[m] * scores[m, None]).sum(0) / scores[m].sum()
                continue
        clusters.append([int(i)])
        fused.append(boxes[i].copy())
    views = max(num_views, 1)
    fused_scores = np.array([scores[m].mean() * min(len(m), views) / views for m in clusters])
    order = _order(fused_scores)
    return (
        np.array(fused).reshape(-1, 4)[order],
        fused_scores[order],
        np.array([clusters[k][0] for k in order], dtype=np.int64),
    )


MERGERS = {"nms": merge_nms, "box_voting": merge_box_voting, "wbf": merge_wbf}


def crop_affine(center: np.ndarray, size: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """2x3 affine from image coordinates to crop-input coordinates: the box of `size` (w, h)
    around `center` fills the (W, H) input, its centre on the input's centre ((W-1)/2, (H-1)/2)
    in pixel-index coordinates. (mmpose's get_warp_matrix puts it at (W/2, H/2), half a pixel
    off; the symmetric choice makes a mirrored crop exactly the mirror of the crop, and the
    constant half-pixel shift is undone by the same affine on the way back.)"""
    in_w, in_h = input_size
    sx, sy = in_w / size[0], in_h / size[1]
    return np.array([[sx, 0.0, (in_w - 1) / 2 - sx * center[0]], [0.0, sy, (in_h - 1) / 2 - sy * center[1]]])


def flip_affine(affine: np.ndarray, width: int) -> np.ndarray:
    """The affine of the horizontally flipped crop (index i -> width - 1 - i)."""
    flipped = affine.copy()
    flipped[0] = -affine[0]
    flipped[0, 2] += width - 1
    return flipped


def _to3(affine: np.ndarray) -> np.ndarray:
    return np.vstack([affine, [0.0, 0.0, 1.0]])


def align_heatmaps(
    heatmaps: torch.Tensor, view_affines: np.ndarray, ref_affines: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample view heatmaps onto reference heatmap grids.

    heatmaps: (N, K, H, W); view_affines, ref_affines: (N, 2, 3) image -> heatmap coordinates.
    Returns the resampled heatmaps (N, K, H, W) and a (N, 1, H, W) mask of where the view had
    data (outside its crop it has none, and must not count in an average). Exact for any
    similarity between the views, flips included: no one-pixel shift heuristics.
    """
    n, _, h, w = heatmaps.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    ref_points = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).reshape(-1, 3)  # (H*W, 3) heatmap coords
    grids = []
    for view, ref in zip(view_affines, ref_affines):
        ref_to_view = _to3(view) @ np.linalg.inv(_to3(ref))
        q = ref_points @ torch.from_numpy(ref_to_view[:2].T)
        gx = 2 * q[:, 0] / (w - 1) - 1  # align_corners=True: index 0 -> -1, index W-1 -> +1
        gy = 2 * q[:, 1] / (h - 1) - 1
        grids.append(torch.stack([gx, gy], dim=-1).reshape(h, w, 2))
    grid = torch.stack(grids).to(heatmaps.dtype).to(heatmaps.device)
    aligned = F.grid_sample(heatmaps, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    ones = torch.ones((n, 1, h, w), dtype=heatmaps.dtype, device=heatmaps.device)
    covered = F.grid_sample(ones, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return aligned, (covered > 0.999).to(heatmaps.dtype)


def decode_heatmaps(heatmaps: np.ndarray, blur_kernel: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, H, W) heatmaps -> (N, K, 2) sub-pixel maxima in heatmap coordinates, (N, K) values.

    mmpose's own decoders: the arg-max, refined by DARK (Zhang et al. 2020), which recovers the
    centre of a Gaussian to a small fraction of a pixel.
    """
    from mmpose.codecs.utils import get_heatmap_maximum, refine_keypoints_dark

    locations, values = [], []
    for instance in heatmaps:
        loc, val = get_heatmap_maximum(instance.copy())
        loc = refine_keypoints_dark(loc[None].copy(), instance.copy(), blur_kernel_size=blur_kernel)[0]
        locations.append(loc)
        values.append(val)
    return np.array(locations).reshape(len(heatmaps), -1, 2), np.array(values).reshape(len(heatmaps), -1)
