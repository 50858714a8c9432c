"""Person detector: an mmdet Cascade Mask R-CNN with the project's own test-time augmentation.

mmdet's DetTTAModel does not work with Cascade *Mask* R-CNN (mmdet issue 10705), so the views
are made here: every frame at every configured scale, plain and flipped. All views of a batch of
frames go through the network together, `views_per_forward` at a time (views of similar size
share a call, so padding wastes little). Each view's person boxes are mapped back exactly to the
frame and merged per frame by NMS, box voting or weighted box fusion; the merged box takes the
mask of its best-scoring member, mapped back the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from orpose.configs.schema import DetectorSpec
from orpose.teachers.kernels import set_deform_conv_kernel, set_nms_kernel, set_roi_align_kernel
from orpose.teachers.mm import forward_context, load_model
from orpose.teachers.tta import MERGERS, DetectionView, boxes_from_view, detection_views

__all__ = ["Detections", "PersonDetector", "render_view"]


@dataclass
class Detections:
    """Person detections of one frame, in frame pixels."""

    boxes: np.ndarray  # (N, 4) float32 x1, y1, x2, y2 (pixel-edge coordinates)
    scores: np.ndarray  # (N,) float32, after merging the views
    masks: np.ndarray  # (N, H, W) bool instance masks at frame size

    def __len__(self) -> int:
        return len(self.boxes)


def render_view(image: np.ndarray, view: DetectionView) -> np.ndarray:
    """The view's pixels: bilinear resize (mmcv's default) then an optional horizontal flip."""
    if (view.width, view.height) != (image.shape[1], image.shape[0]):
        image = cv2.resize(image, (view.width, view.height), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(image[:, ::-1]) if view.flip else image


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
        self.merge = MERGERS[spec.merge]
        self.forward_passes = 0  # network calls so far (batching is measured, not assumed)

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
            features = model.extract_feat(batch)
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

        def masks_of(rows_per_view: list[np.ndarray]) -> list[np.ndarray]:
            chosen = [result[torch.as_tensor(rows, dtype=torch.long)] for result, rows in zip(boxes, rows_per_view)]
            if not model.roi_head.with_mask or not any(len(rows) for rows in rows_per_view):
                return [np.zeros((len(rows), *img.shape[:2]), bool) for rows, img in zip(rows_per_view, images)]
            with torch.no_grad():  # fp32, as the box heads (see above)
                with_masks = model.roi_head.predict_mask(features, metas, chosen, rescale=False)
            return [r.masks.cpu().numpy().astype(bool) for r in with_masks]

        return boxes, masks_of

    def __call__(self, images: list[np.ndarray]) -> list[Detections]:
        jobs = []  # (frame index, view)
        for index, image in enumerate(images):
            h, w = image.shape[:2]
            jobs += [
                (index, view) for view in detection_views(w, h, self.spec.scales, self.spec.max_side, self.spec.flip)
            ]
        jobs.sort(key=lambda job: (job[1].width * job[1].height, job[0], job[1].flip))  # similar sizes together

        # Per frame: (boxes, scores, view rows, view, chunk, position in chunk) of every view.
        per_frame: list[list] = [[] for _ in images]
        chunks = []
        for start in range(0, len(jobs), self.spec.views_per_forward):
            chunk = jobs[start : start + self.spec.views_per_forward]
            boxes, masks_of = self._forward([render_view(images[i], view) for i, view in chunk])
            chunks.append((chunk, masks_of))
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
                mask = computed[c][position][wanted[c][position].index(row)]
                if view.flip:
                    mask = mask[:, ::-1]
                masks[out] = cv2.resize(mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
            detections.append(Detections(boxes, scores, masks))
        return detections

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
