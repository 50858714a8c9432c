"""Person detector: an mmdet Cascade Mask R-CNN with the project's own test-time augmentation.

mmdet's DetTTAModel does not work with Cascade *Mask* R-CNN (mmdet issue 10705), so the views
are made here: every frame at every configured scale, plain and flipped. All views of a batch of
frames go through the network together, `views_per_forward` at a time (views of similar size
share a call, so padding wastes little). Each view's person boxes are mapped back exactly to the
frame and merged per frame by NMS, box voting or weighted box fusion. Masks are computed for the merged boxes only
(the mask head is the costly part of the heads), per `DetectorSpec.masks`: "member", the mask of the
box's best-scoring member in that member's view (every view's features kept until the frame's views are
merged); "merged", the mask of the merged box itself in one view per frame (the first scale, unflipped),
whose features alone are kept: the others are freed chunk by chunk, so memory does not grow with the
number of views. Either way the mask is mapped back to the frame exactly as the boxes are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from orpose.configs.schema import DetectorSpec
from orpose.teachers.kernels import set_deform_conv_kernel, set_nms_kernel, set_roi_align_kernel
from orpose.teachers.mm import compiled, forward_context, load_model
from orpose.teachers.tta import MERGERS, DetectionView, boxes_from_view, boxes_to_view, detection_views

__all__ = ["Detections", "PersonDetector", "render_view", "mask_to_frame"]


@dataclass
class Detections:
    """Person detections of one frame, in frame pixels."""

    boxes: np.ndarray  # (N, 4) float32 x1, y1, x2, y2 (pixel-edge coordinates)
    scores: np.ndarray  # (N,) float32, after merging the views
    masks: np.ndarray  # (N, H, W) bool instance masks at frame size

    def __len__(self) -> int:
        return len(self.boxes)


def mask_to_frame(mask: np.ndarray, view: DetectionView, width: int, height: int) -> np.ndarray:
    """A view's (h, w) mask mapped back onto the frame: unflipped, then resized (nearest) to the frame's size."""
    if view.flip:
        mask = mask[:, ::-1]
    return cv2.resize(mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)


def render_view(image: np.ndarray, view: DetectionView) -> np.ndarray:
    """The view's pixels: bilinear resize (mmcv's default) then an optional horizontal flip."""
    if (view.width, view.height) != (image.shape[1], image.shape[0]):
        image = cv2.resize(image, (view.width, view.height), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(image[:, ::-1]) if view.flip else image


@dataclass
class _ViewFeatures:
    """One view's FPN features (each level 1 x C x h x w) and its meta, kept for its frame's masks."""

    levels: tuple
    meta: dict


class PersonDetector:
    """`__call__(images) -> list[Detections]`. Images are (H, W, 3) uint8 BGR."""

    def __init__(
        self,
        spec: DetectorSpec,
        checkpoint: str | Path,
        device: torch.device,
        box_threshold: float,
        config_root: Path | None = None,
        person_label: int = 0,
        *,
        precision: str = "fp32",
        channels_last: bool = False,
        compile: bool = False,
    ):
        self.spec = spec
        self.box_threshold = box_threshold
        self.person_label = person_label  # 'person' is class 0 in COCO and in the one-class tiny model
        self.device = device
        self.model, _, self.checkpoint_sha256 = load_model(
            "mmdet", spec, checkpoint, device, config_root, channels_last
        )
        set_roi_align_kernel(self.model, spec.roi_align)
        set_deform_conv_kernel(self.model, spec.deform_conv)
        set_nms_kernel(self.model, spec.nms)
        self.precision, self.channels_last = precision, channels_last
        self.extract_features = compiled(self.model.extract_feat, compile)  # backbone and neck
        self.merge = MERGERS[spec.merge]
        self.forward_passes = 0  # network calls so far (batching is measured, not assumed)
        self.views_held_peak = 0  # most views whose features were alive at once (memory is measured, not assumed)

    def _forward(self, images: list[np.ndarray]):
        """Boxes of every view; returns (per-view box results, a function that computes the masks
        of chosen detections). Masks are the costly part of the heads (all 50 detections of a
        view, pasted at full size): only the merged boxes' representatives need one."""
        from mmdet.structures import DetDataSample

        inputs = [torch.from_numpy(img).permute(2, 0, 1).contiguous() for img in images]
        samples = [
            DetDataSample(metainfo=dict(img_shape=img.shape[:2], ori_shape=img.shape[:2], scale_factor=(1.0, 1.0)))
            for img in images
        ]
        model = self.model
        with forward_context(self.device, self.precision):
            data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples), False)
            metas = [sample.metainfo for sample in data["data_samples"]]
            batch = (
                data["inputs"].contiguous(memory_format=torch.channels_last) if self.channels_last else data["inputs"]
            )
            features = self.extract_features(batch)
        # Mixed precision and NHWC cover the backbone and neck (most of the FLOPs); the RPN and RoI
        # heads get fp32 NCHW features: mmcv's RoIAlign has no bf16 CPU kernel, and it reads its
        # input as NCHW-contiguous memory, so channels-last features gave garbage boxes.
        features = tuple(level.float().contiguous() for level in features)
        with torch.no_grad():
            proposals = model.rpn_head.predict(features, data["data_samples"], rescale=False)
            boxes = model.roi_head.predict_bbox(
                features, metas, proposals, rcnn_test_cfg=model.roi_head.test_cfg, rescale=False
            )
        self.forward_passes += 1

        def keep_view(position: int) -> _ViewFeatures:
            """One view's features, copied out of the batch (a slice would keep the whole batch alive)."""
            meta = metas[position]
            return _ViewFeatures(tuple(level[position : position + 1].clone() for level in features), meta)

        def masks_of(rows_per_view: list[np.ndarray]) -> list[np.ndarray]:
            chosen = [result[torch.as_tensor(rows, dtype=torch.long)] for result, rows in zip(boxes, rows_per_view)]
            if not model.roi_head.with_mask or not any(len(rows) for rows in rows_per_view):
                return [np.zeros((len(rows), *img.shape[:2]), bool) for rows, img in zip(rows_per_view, images)]
            with torch.no_grad():  # fp32, as the box heads (see above)
                with_masks = model.roi_head.predict_mask(features, metas, chosen, rescale=False)
            return [r.masks.cpu().numpy().astype(bool) for r in with_masks]

        return boxes, masks_of, keep_view

    def _masks_at(self, view_features: _ViewFeatures, boxes: np.ndarray) -> np.ndarray:
        """Masks (N, view H, view W) of boxes given in the view's pixels, from that view's kept features."""
        from mmengine.structures import InstanceData

        height, width = view_features.meta["img_shape"]
        if not self.model.roi_head.with_mask or not len(boxes):
            return np.zeros((len(boxes), height, width), bool)
        instances = InstanceData(
            bboxes=torch.as_tensor(boxes, dtype=torch.float32, device=view_features.levels[0].device),
            labels=torch.full(
                (len(boxes),), self.person_label, dtype=torch.long, device=view_features.levels[0].device
            ),
            scores=torch.ones(len(boxes), device=view_features.levels[0].device),
        )
        with torch.no_grad():  # fp32, as the box heads
            result = self.model.roi_head.predict_mask(
                view_features.levels, [view_features.meta], [instances], rescale=False
            )[0]
        return result.masks.cpu().numpy().astype(bool)

    def __call__(self, images: list[np.ndarray]) -> list[Detections]:
        jobs = []  # (frame index, view)
        for index, image in enumerate(images):
            h, w = image.shape[:2]
            jobs += [
                (index, view) for view in detection_views(w, h, self.spec.scales, self.spec.max_side, self.spec.flip)
            ]
        jobs.sort(key=lambda job: (job[1].width * job[1].height, job[0], job[1].flip))  # similar sizes together

        merged_masks = self.spec.masks == "merged"
        mask_views = {index: self._mask_view(image) for index, image in enumerate(images)} if merged_masks else {}
        kept_views: dict[int, _ViewFeatures] = {}  # frame -> its mask view's features ("merged")
        # Per frame: (boxes, scores, view rows, view, chunk, position in chunk) of every view.
        per_frame: list[list] = [[] for _ in images]
        chunks = []
        for start in range(0, len(jobs), self.spec.views_per_forward):
            chunk = jobs[start : start + self.spec.views_per_forward]
            boxes, masks_of, keep_view = self._forward([render_view(images[i], view) for i, view in chunk])
            for position, (frame, view) in enumerate(chunk):
                if merged_masks and view == mask_views[frame]:
                    kept_views[frame] = keep_view(position)
            held = len(kept_views) + (len(chunk) if merged_masks else sum(len(c) for c, _ in chunks) + len(chunk))
            self.views_held_peak = max(self.views_held_peak, held)
            chunks.append((chunk, None if merged_masks else masks_of))
            if merged_masks:  # this chunk's features go now (before the next chunk's forward)
                masks_of = keep_view = None
            for position, ((frame, view), result) in enumerate(zip(chunk, boxes)):
                person = (result.labels == self.person_label).cpu().numpy()
                rows = np.flatnonzero(person)
                per_frame[frame].append(
                    (
                        boxes_from_view(result.bboxes.cpu().numpy()[person], view),
                        result.scores.cpu().numpy()[person],
                        rows,
                        view,
                        len(chunks) - 1,
                        position,
                    )
                )

        merged = [self.merge_views(views) for views in per_frame]
        if merged_masks:
            return [
                Detections(boxes, scores, self._merged_masks(image, boxes, mask_views[index], kept_views.pop(index)))
                for index, (image, (boxes, scores, _)) in enumerate(zip(images, merged))
            ]
        # Masks for the kept boxes only, each from its representative detection's own view.
        wanted = [[[] for _ in chunk] for chunk, _ in chunks]
        for _, _, picks in merged:
            for _, c, position, row in picks:
                wanted[c][position].append(row)
        computed = [
            masks_of([np.array(rows, dtype=np.int64) for rows in rows_per_view])
            for (_, masks_of), rows_per_view in zip(chunks, wanted)
        ]
        detections = []
        for image, (boxes, scores, picks) in zip(images, merged):
            h, w = image.shape[:2]
            masks = np.zeros((len(picks), h, w), dtype=bool)
            for out, (view, c, position, row) in enumerate(picks):
                masks[out] = mask_to_frame(computed[c][position][wanted[c][position].index(row)], view, w, h)
            detections.append(Detections(boxes, scores, masks))
        return detections

    def _mask_view(self, image: np.ndarray) -> DetectionView:
        """The view whose features give a frame's masks with `masks: merged`: the first scale, not flipped."""
        h, w = image.shape[:2]
        return detection_views(w, h, self.spec.scales[:1], self.spec.max_side, False)[0]

    def _merged_masks(
        self, image: np.ndarray, boxes: np.ndarray, view: DetectionView, features: _ViewFeatures
    ) -> np.ndarray:
        """Each merged box's mask from the frame's mask view, mapped back to the frame."""
        h, w = image.shape[:2]
        in_view = self._masks_at(features, boxes_to_view(boxes, view))
        masks = np.zeros((len(boxes), h, w), dtype=bool)
        for out, mask in enumerate(in_view):
            masks[out] = mask_to_frame(mask, view, w, h)
        return masks

    def merge_views(self, views):
        """Merge one frame's views: (boxes, scores, [(view, chunk, position, row) per kept box])."""
        # Deterministic member order (by view, as configured), whatever order the batches ran in.
        views = sorted(views, key=lambda item: (item[3].width, item[3].flip))
        boxes = np.concatenate([v[0] for v in views]) if views else np.zeros((0, 4))
        scores = np.concatenate([v[1] for v in views]) if views else np.zeros(0)
        owner = [(v[3], v[4], v[5], int(v[2][j])) for v in views for j in range(len(v[0]))]
        merged, merged_scores, representative = self.merge(boxes, scores, self.spec.merge_iou, len(views))
        keep = np.flatnonzero(merged_scores >= self.box_threshold)[: self.spec.max_persons]
        picks = [owner[representative[k]] for k in keep]
        return merged[keep].astype(np.float32), merged_scores[keep].astype(np.float32), picks
