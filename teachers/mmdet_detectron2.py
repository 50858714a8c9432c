"""detectron2's test-time behaviour where mmdet's differs, as mmdet modules.

The converted X-152 (configs/teachers/mm/cascade-mask-rcnn_x152-32x8d-dconv-gn_fpn_in5k_detectron2.py)
is detectron2's model only with these (found by `make check-detectron2`, which compares the two
frameworks stage by stage):

`Detectron2DeltaXYWHBBoxCoder`: detectron2's Box2BoxTransform clamps the log-size deltas from
above only (at log(1000/16)); mmdet's coder clamps them on both sides, which gives a box that a
network shrinks more than 62-fold a different width.

`Detectron2CascadeRoIHead`: mmdet's `CascadeRoIHead` differs from detectron2's CascadeROIHeads in
two ways:
- detectron2 averages the three stages' class *probabilities* (softmax, then mean); mmdet averages
  their logits and applies softmax to the mean.
- detectron2 has one mask head, run once on the last stage's boxes; mmdet builds one per stage and
  averages their sigmoids.
Everything else (pooling, box decoding and clipping between stages, class-agnostic regression, the
final per-class NMS) is mmdet's own code. Inference only: the weights come from detectron2.
"""

from __future__ import annotations

import math

import torch
from mmdet.models.roi_heads import CascadeRoIHead
from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder
from mmdet.models.test_time_augs import merge_aug_masks
from mmdet.models.utils import empty_instances
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.structures.bbox import HorizontalBoxes, bbox2roi, get_box_tensor
from mmengine.model import ModuleList

__all__ = ["Detectron2CascadeRoIHead", "Detectron2DeltaXYWHBBoxCoder", "apply_deltas"]

SCALE_CLAMP = math.log(1000.0 / 16)  # detectron2's _DEFAULT_SCALE_CLAMP


def apply_deltas(
    boxes: torch.Tensor, deltas: torch.Tensor, weights, scale_clamp: float = SCALE_CLAMP, max_shape=None
) -> torch.Tensor:
    """detectron2's `Box2BoxTransform.apply_deltas`: boxes (N, 4) x1y1x2y2, deltas (N, 4k) ->
    (N, 4k); then clipped to `max_shape` (h, w) when given (detectron2's `Boxes.clip`)."""
    deltas = deltas.float()
    boxes = boxes.to(deltas.dtype)
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    ctr_x = boxes[:, 0] + 0.5 * widths
    ctr_y = boxes[:, 1] + 0.5 * heights
    wx, wy, ww, wh = weights
    dx = deltas[:, 0::4] / wx
    dy = deltas[:, 1::4] / wy
    dw = torch.clamp(deltas[:, 2::4] / ww, max=scale_clamp)
    dh = torch.clamp(deltas[:, 3::4] / wh, max=scale_clamp)
    pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
    pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
    pred_w = torch.exp(dw) * widths[:, None]
    pred_h = torch.exp(dh) * heights[:, None]
    x1, y1 = pred_ctr_x - 0.5 * pred_w, pred_ctr_y - 0.5 * pred_h
    x2, y2 = pred_ctr_x + 0.5 * pred_w, pred_ctr_y + 0.5 * pred_h
    if max_shape is not None:
        h, w = max_shape[0], max_shape[1]
        x1, x2 = x1.clamp(min=0, max=w), x2.clamp(min=0, max=w)
        y1, y2 = y1.clamp(min=0, max=h), y2.clamp(min=0, max=h)
    return torch.stack((x1, y1, x2, y2), dim=-1).reshape(deltas.shape)


@TASK_UTILS.register_module()
class Detectron2DeltaXYWHBBoxCoder(DeltaXYWHBBoxCoder):
    """mmdet's coder (encode, config fields) with detectron2's decoding. `target_stds` are the
    inverses of detectron2's BBOX_REG_WEIGHTS; `target_means` must be zero."""

    def decode(self, bboxes, pred_bboxes, max_shape=None, wh_ratio_clip=16 / 1000):
        if any(self.means):
            raise ValueError("Detectron2DeltaXYWHBBoxCoder: detectron2 has no delta means; target_means must be 0")
        if pred_bboxes.ndim != 2:
            raise ValueError(
                f"Detectron2DeltaXYWHBBoxCoder decodes (N, 4k) deltas, got shape {tuple(pred_bboxes.shape)}"
            )
        weights = [1.0 / std for std in self.stds]
        if max_shape is not None and not self.clip_border:
            max_shape = None
        decoded = apply_deltas(get_box_tensor(bboxes), pred_bboxes, weights, abs(math.log(wh_ratio_clip)), max_shape)
        return HorizontalBoxes(decoded) if self.use_box_type else decoded


@MODELS.register_module()
class Detectron2CascadeRoIHead(CascadeRoIHead):
    """`mask_head` and `mask_roi_extractor` are single configs: one head for the final boxes."""

    def init_mask_head(self, mask_roi_extractor, mask_head) -> None:
        if isinstance(mask_head, list) or isinstance(mask_roi_extractor, list):
            raise ValueError(
                "Detectron2CascadeRoIHead has one mask head: give mask_head and mask_roi_extractor as single configs"
            )
        self.mask_head = ModuleList([MODELS.build(mask_head)])
        self.share_roi_extractor = False
        self.mask_roi_extractor = ModuleList([MODELS.build(mask_roi_extractor)])

    def loss(self, *args, **kwargs):
        raise NotImplementedError("Detectron2CascadeRoIHead is inference only (its weights are detectron2's)")

    def predict_mask(self, x, batch_img_metas, results_list, rescale: bool = False):
        mask_rois = bbox2roi([res.bboxes for res in results_list])
        if mask_rois.shape[0] == 0:
            return empty_instances(
                batch_img_metas,
                mask_rois.device,
                task_type="mask",
                instance_results=results_list,
                mask_thr_binary=self.test_cfg.mask_thr_binary,
            )
        mask_preds = self._mask_forward(0, x, mask_rois)["mask_preds"]
        per_image = mask_preds.split([len(res) for res in results_list], 0)
        probabilities = [merge_aug_masks([m.sigmoid().detach()], meta) for m, meta in zip(per_image, batch_img_metas)]
        return self.mask_head[0].predict_by_feat(
            mask_preds=probabilities,
            results_list=results_list,
            batch_img_metas=batch_img_metas,
            rcnn_test_cfg=self.test_cfg,
            rescale=rescale,
            activate_map=True,
        )

    def _refine_roi(self, x, rois, batch_img_metas, num_proposals_per_img, **kwargs):
        """mmdet's loop, with the stages' softmax probabilities averaged. The mean is returned as
        its log: the last head's `predict_by_feat` applies softmax, and softmax(log p) = p when
        p sums to one, which a mean of distributions does."""
        stage_probabilities = []
        for stage in range(self.num_stages):
            bbox_results = self._bbox_forward(stage=stage, x=x, rois=rois, **kwargs)
            cls_scores = bbox_results["cls_score"].split(num_proposals_per_img, 0)
            bbox_preds = bbox_results["bbox_pred"].split(num_proposals_per_img, 0)
            rois = rois.split(num_proposals_per_img, 0)
            stage_probabilities.append([torch.softmax(score, dim=-1) for score in cls_scores])
            if stage < self.num_stages - 1:
                bbox_head = self.bbox_head[stage]
                refined = []
                for i in range(len(batch_img_metas)):
                    if rois[i].shape[0] > 0:
                        label = cls_scores[i][:, :-1].argmax(dim=1)  # unused: class-agnostic regression
                        boxes = get_box_tensor(
                            bbox_head.regress_by_class(rois[i][:, 1:], label, bbox_preds[i], batch_img_metas[i])
                        )
                        refined.append(torch.cat([rois[i][:, [0]], boxes], dim=1))
                rois = torch.cat(refined) if refined else torch.cat(rois)
        mean_log_probabilities = [
            torch.log(sum(probabilities[i] for probabilities in stage_probabilities) / self.num_stages)
            for i in range(len(batch_img_metas))
        ]
        return rois, mean_log_probabilities, bbox_preds
