"""The converted X-152 cascade against detectron2 itself, stage by stage (`make check-detectron2`).

1. detectron2's model is built from its own model zoo config
   (Misc/cascade_mask_rcnn_X_152_32x8d_FPN_IN5k_gn_dconv.yaml), every parameter and buffer set to
   seeded random values (`seeded_detectron2_arrays`: FrozenBN statistics, GroupNorm affine and the
   deformable offsets convs too, so that a wrong mapping cannot hide behind a default), saved as a
   detectron2 model file (`{"model": {name: ndarray}, "__author__": ...}`, what its model zoo
   publishes). detectron2's own checkpointer reads that file back into a second model, which
   is the reference.
2. `labels convert-detectron2` converts the file; the mmdet model loads it strictly.
3. On bundled sample frames, both models get the same image (BGR, at its own size, padded to a
   multiple of 32 by each framework's preprocessing) and the script compares: the normalised
   input, backbone res2-res5, FPN p2-p6, RPN objectness and deltas, proposals, each cascade
   stage's class scores, box deltas and refined boxes for the same proposals, mask logits for
   the same boxes, and the final detections (boxes within 0.5 px, scores within 1e-3).
4. The deformable convolution alone: detectron2's layer (torchvision's kernel on CPU), mmcv's
   DeformConv2d and `torchvision.ops.deform_conv2d`, same input, offsets and weights.

Prints the largest difference per stage and its tolerance; exits 1 when one is exceeded. Needs
detectron2 (a test-only extra built from ../shared/vendor: `make check-detectron2` installs it).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

D2_CONFIG = "Misc/cascade_mask_rcnn_X_152_32x8d_FPN_IN5k_gn_dconv.yaml"
SAMPLE = REPOSITORY / "data" / "sample"

# Tolerances: feature maps relative to their largest magnitude (float32 through 152 layers, two
# implementations of grouped and deformable convolutions); boxes in pixels; scores absolute.
RELATIVE = 1e-4
BOX_PX = 0.5
SCORE = 1e-3


class Report:
    def __init__(self):
        self.rows: list[dict] = []

    def add(self, stage: str, difference: float, tolerance: float, unit: str, detail: str = ""):
        ok = bool(np.isfinite(difference) and difference <= tolerance)
        self.rows.append(
            dict(stage=stage, difference=float(difference), tolerance=tolerance, unit=unit, ok=ok, detail=detail)
        )
        print(
            f"  {'ok  ' if ok else 'FAIL'} {stage:<34} {difference:10.3g} {unit:<9} (tolerance {tolerance:g})"
            f"{'  ' + detail if detail else ''}",
            flush=True,
        )

    def tensors(self, stage: str, reference: torch.Tensor, ours: torch.Tensor):
        if reference.shape != ours.shape:
            self.add(
                stage, float("inf"), RELATIVE, "relative", f"shapes {tuple(reference.shape)} vs {tuple(ours.shape)}"
            )
            return
        scale = float(reference.abs().max()) or 1.0
        self.add(
            stage,
            float((reference - ours).abs().max()) / scale,
            RELATIVE,
            "relative",
            f"shape {tuple(reference.shape)}, max |ref| {scale:.3g}",
        )

    @property
    def ok(self) -> bool:
        return all(row["ok"] for row in self.rows)


def match_boxes(reference: torch.Tensor, ours: torch.Tensor, same_class=None):
    """For each reference box the index of our box with the highest IoU (and, if given, the same
    class): returns (indices, ious)."""
    from torchvision.ops import box_iou

    if len(reference) == 0 or len(ours) == 0:
        return torch.zeros(len(reference), dtype=torch.long), torch.zeros(len(reference))
    iou = box_iou(reference, ours)
    if same_class is not None:
        iou = iou * same_class
    best, index = iou.max(dim=1)
    return index, best


def _compare_backbones(d2_model, mm_model, images, inputs, report: Report, label: str):
    """Backbone stages and FPN levels; returns both sides' FPN features."""
    from mmcv.ops import DeformConv2dPack

    captured, offsets = {}, []
    hook = d2_model.backbone.bottom_up.register_forward_hook(lambda m, i, o: captured.update(o))
    features = d2_model.backbone(images.tensor)
    hook.remove()
    hooks = [
        m.conv_offset.register_forward_hook(lambda m, i, o: offsets.append(o.abs().mean()))
        for m in mm_model.backbone.modules()
        if isinstance(m, DeformConv2dPack)
    ]
    mm_backbone = mm_model.backbone(inputs)
    for hook in hooks:
        hook.remove()
    print(
        f"  {len(offsets)} deformable convolutions, mean |offset| {float(torch.stack(offsets).mean()):.2f} px "
        f"(from {float(min(offsets)):.2f} to {float(max(offsets)):.2f})"
    )
    mm_features = mm_model.neck(mm_backbone)
    for index, name in enumerate(("res2", "res3", "res4", "res5")):
        report.tensors(f"{label} backbone {name}", captured[name], mm_backbone[index])
    for index, name in enumerate(("p2", "p3", "p4", "p5", "p6")):
        report.tensors(f"{label} FPN {name}", features[name], mm_features[index])
    return features, mm_features


def _compare_rpn(d2_model, mm_model, images, features, mm_features, samples, report: Report, label: str):
    """RPN head outputs per level, then the proposals; returns both sides' proposals."""
    rpn = d2_model.proposal_generator
    objectness, deltas = rpn.rpn_head([features[f] for f in rpn.in_features])
    mm_objectness, mm_deltas = mm_model.rpn_head(mm_features)
    for level, (a, b) in enumerate(zip(objectness, mm_objectness)):
        report.tensors(f"{label} RPN objectness p{level + 2}", a, b)
    for level, (a, b) in enumerate(zip(deltas, mm_deltas)):
        report.tensors(f"{label} RPN deltas p{level + 2}", a, b)

    proposals, _ = rpn(images, features)
    mm_proposals = mm_model.rpn_head.predict(mm_features, samples, rescale=False)
    d2_boxes, d2_logits = proposals[0].proposal_boxes.tensor, proposals[0].objectness_logits
    mm_boxes, mm_scores = mm_proposals[0].bboxes, mm_proposals[0].scores
    index, iou = match_boxes(d2_boxes, mm_boxes)
    matched = iou > 0.999
    report.add(
        f"{label} proposals unmatched",
        float((~matched).float().mean()),
        0.01,
        "fraction",
        f"{len(d2_boxes)} detectron2, {len(mm_boxes)} mmdet",
    )
    report.add(
        f"{label} proposals boxes", float((d2_boxes[matched] - mm_boxes[index[matched]]).abs().max()), BOX_PX, "px"
    )
    report.add(
        f"{label} proposals scores",
        float((d2_logits[matched].sigmoid() - mm_scores[index[matched]]).abs().max()),
        SCORE,
        "abs",
    )
    return proposals, mm_proposals


def _compare_cascade(d2_model, mm_model, features, mm_features, proposals, meta: dict, report: Report, label: str):
    """The cascade on the same proposals (detectron2's), stage by stage: scores, deltas, refined boxes."""
    from mmdet.structures.bbox import bbox2roi

    h, w = meta["img_shape"]
    heads = d2_model.roi_heads
    box_features = [features[f] for f in heads.box_in_features]
    stage_proposals, refined = proposals, None
    rois = bbox2roi([proposals[0].proposal_boxes.tensor])
    for stage in range(heads.num_cascade_stages):
        if stage > 0:
            stage_proposals = heads._create_proposals_from_boxes(refined, [(h, w)])
        scores, stage_deltas = heads._run_stage(box_features, stage_proposals, stage)
        refined = heads.box_predictor[stage].predict_boxes((scores, stage_deltas), stage_proposals)
        mm_result = mm_model.roi_head._bbox_forward(stage, mm_features, rois)
        report.tensors(f"{label} cascade {stage + 1} class scores", scores, mm_result["cls_score"])
        report.tensors(f"{label} cascade {stage + 1} box deltas", stage_deltas, mm_result["bbox_pred"])
        head = mm_model.roi_head.bbox_head[stage]
        labels = mm_result["cls_score"][:, :-1].argmax(dim=1)
        mm_refined = head.regress_by_class(rois[:, 1:], labels, mm_result["bbox_pred"], meta)
        refined_clipped = refined[0].clone()
        refined_clipped[:, 0::2] = refined_clipped[:, 0::2].clamp(0, w)
        refined_clipped[:, 1::2] = refined_clipped[:, 1::2].clamp(0, h)
        report.add(
            f"{label} cascade {stage + 1} boxes", float((refined_clipped - mm_refined).abs().max()), BOX_PX, "px"
        )
        rois = torch.cat([rois[:, :1], mm_refined], dim=1)


def _compare_detections(d2_det, mm_det, report: Report, label: str) -> None:
    """Final detections, each framework end to end from its own proposals, matched by class and IoU."""
    a_boxes, a_scores, a_classes = d2_det.pred_boxes.tensor, d2_det.scores, d2_det.pred_classes
    b_boxes, b_scores, b_classes = mm_det.bboxes, mm_det.scores, mm_det.labels
    same = (a_classes[:, None] == b_classes[None, :]).float()
    index, iou = match_boxes(a_boxes, b_boxes, same)
    # A detection at the score threshold or at the 100-per-image cut may be kept by one side only.
    clear = (a_scores > 0.05 + SCORE) & (
        a_scores > (a_scores.sort(descending=True).values[-1] + SCORE if len(a_scores) >= 100 else 0)
    )
    found = iou > 0.99
    report.add(
        f"{label} detections unmatched",
        float((clear & ~found).sum()),
        0,
        "count",
        f"{len(a_boxes)} detectron2, {len(b_boxes)} mmdet, {int(clear.sum())} clear of the cuts",
    )
    both = clear & found
    report.add(
        f"{label} detections boxes",
        float((a_boxes[both] - b_boxes[index[both]]).abs().max()) if both.any() else 0.0,
        BOX_PX,
        "px",
    )
    report.add(
        f"{label} detections scores",
        float((a_scores[both] - b_scores[index[both]]).abs().max()) if both.any() else 0.0,
        SCORE,
        "abs",
    )


def compare_frame(d2_model, mm_model, image_bgr: np.ndarray, report: Report, label: str):
    """Both models on one frame, stage by stage, into `report`; returns detectron2's detection count."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import bbox2roi

    h, w = image_bgr.shape[:2]
    chw = torch.from_numpy(np.ascontiguousarray(image_bgr)).permute(2, 0, 1)

    # Preprocessing: each framework's own (channel order, normalisation, padding).
    images = d2_model.preprocess_image([{"image": chw.float(), "height": h, "width": w}])
    sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0)))
    data = mm_model.data_preprocessor(dict(inputs=[chw], data_samples=[sample]), False)
    samples = data["data_samples"]
    report.tensors(f"{label} input (normalised, padded)", images.tensor, data["inputs"])

    features, mm_features = _compare_backbones(d2_model, mm_model, images, data["inputs"], report, label)
    proposals, mm_proposals = _compare_rpn(d2_model, mm_model, images, features, mm_features, samples, report, label)
    _compare_cascade(d2_model, mm_model, features, mm_features, proposals, samples[0].metainfo, report, label)

    heads = d2_model.roi_heads
    d2_det = heads(images, features, proposals)[0][0]
    mm_det = mm_model.roi_head.predict(mm_features, mm_proposals, samples, rescale=False)[0]
    _compare_detections(d2_det, mm_det, report, label)

    # Mask logits for the same boxes (detectron2's final ones).
    mask_features = heads.mask_pooler([features[f] for f in heads.mask_in_features], [d2_det.pred_boxes])
    d2_masks = heads.mask_head.layers(mask_features)
    mm_masks = mm_model.roi_head._mask_forward(0, mm_features, bbox2roi([d2_det.pred_boxes.tensor]))["mask_preds"]
    report.tensors(f"{label} mask logits", d2_masks, mm_masks)
    return len(d2_det.pred_boxes.tensor)


def compare_deform_conv(report: Report, seed: int):
    """One deformable convolution (res3's shape: 512 channels, 32 groups) by three kernels."""
    from detectron2.layers import DeformConv
    from mmcv.ops import deform_conv2d as mmcv_deform_conv2d
    from torchvision.ops import deform_conv2d as tv_deform_conv2d

    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 512, 23, 31, generator=generator)
    layer = DeformConv(512, 512, 3, stride=2, padding=1, groups=32, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) / np.sqrt(16 * 9))
    out_h, out_w = 12, 16
    offset = torch.randn(2, 18, out_h, out_w, generator=generator) * 3.0  # up to ~10 px: borders are crossed
    d2 = layer(x, offset)
    mmcv = mmcv_deform_conv2d(
        x, offset, layer.weight, 2, 1, 1, 32, 1
    )  # stride, padding, dilation, groups, deform groups
    tv = tv_deform_conv2d(x, offset, layer.weight, stride=2, padding=1)
    still = mmcv_deform_conv2d(x, torch.zeros_like(offset), layer.weight, 2, 1, 1, 32, 1)
    moved = float((still - mmcv).abs().max()) / float(mmcv.abs().max())
    report.add(
        "deform conv: offsets change the output",
        1.0 / max(moved, 1e-12),
        10.0,
        "1/relative",
        f"zero offsets differ by {moved:.3g} of max: the comparison below is not of plain convolutions",
    )
    report.tensors("deform conv: detectron2 vs mmcv", d2, mmcv)
    report.tensors("deform conv: torchvision vs mmcv", tv, mmcv)


def _seeded_models(seed: int, work: Path, report: Report):
    """detectron2's X-152 with seeded weights, written as its .pkl and loaded by detectron2's own reader,
    and the mmdet model converted from that file; returns (d2_model, mm_model, figures for the JSON)."""
    from detectron2 import model_zoo
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model

    from orpose.configs.schema import CONFIG_DIR
    from orpose.teachers.convert_detectron2 import (
        DETECTRON2_X152_CONFIG,
        convert_detectron2,
        seeded_detectron2_arrays,
        write_detectron2_pickle,
    )
    from orpose.teachers.mm import build_mm_model, load_mm_config
    from orpose.teachers.model_info import count_parameters

    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file(D2_CONFIG))
    cfg.MODEL.DEVICE = "cpu"
    d2_model = build_model(cfg).eval()
    state = seeded_detectron2_arrays({k: tuple(v.shape) for k, v in d2_model.state_dict().items()}, seed)
    pkl, pth = work / "seeded_x152_detectron2.pkl", work / "seeded_x152_mmdet.pth"
    write_detectron2_pickle(state, pkl, "tools/check_detectron2.py (seeded)")
    d2_model = build_model(cfg).eval()
    DetectionCheckpointer(d2_model).load(str(pkl))  # detectron2's own reader: the file is what it loads
    for name, value in d2_model.state_dict().items():
        if name in state and not np.array_equal(value.numpy(), state[name]):
            raise SystemExit(f"detectron2 did not load {name} from {pkl}")
    d2_params = sum(p.numel() for p in d2_model.parameters())
    print(f"detectron2 {D2_CONFIG}: {d2_params / 1e6:.2f} M parameters, {len(state)} arrays -> {pkl}")

    mm_model = build_mm_model("mmdet", load_mm_config(DETECTRON2_X152_CONFIG, None, CONFIG_DIR)).eval()
    meta = convert_detectron2(pkl, pth, model=mm_model)  # also loads the written file back strictly into mm_model
    mm_params, frozen = count_parameters(mm_model)
    print(
        f"converted -> {pth} ({meta['arrays']} arrays, strict load: 0 missing, 0 unexpected, 0 shape mismatches); "
        f"mmdet {mm_params / 1e6:.2f} M parameters of which {frozen / 1e6:.2f} M frozen BatchNorm affine "
        f"(buffers in detectron2's FrozenBN): {(mm_params - frozen) / 1e6:.2f} M to compare"
    )
    report.add("parameters (mmdet - frozen BN) - detectron2", abs(mm_params - frozen - d2_params), 0, "count")
    figures = dict(d2_parameters=d2_params, mm_parameters=mm_params, frozen_bn=frozen, meta=meta)
    return d2_model, mm_model, figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=2, help="bundled sample frames to compare (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the per-stage figures here")
    parser.add_argument("--work", type=Path, help="folder for the seeded .pkl and converted .pth (default: a temp dir)")
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)

    try:
        import detectron2  # noqa: F401
    except ImportError:
        print("detectron2 is not installed: `make check-detectron2` builds it from ../shared/vendor", file=sys.stderr)
        return 2
    import cv2

    started = time.time()
    report = Report()
    work = args.work or Path(tempfile.mkdtemp(prefix="check-detectron2-"))
    d2_model, mm_model, figures = _seeded_models(args.seed, work, report)

    manifest = [json.loads(line) for line in (SAMPLE / "manifest.jsonl").read_text().splitlines() if line.strip()]
    # Frames from different cameras first: different scenes.
    manifest.sort(key=lambda row: (row["frame_id"].split("/")[-1], row["camera"]))
    for row in manifest[: args.frames]:
        image = cv2.imread(str(SAMPLE / row["color"]), cv2.IMREAD_COLOR)
        print(f"frame {row['frame_id']} ({image.shape[1]}x{image.shape[0]}):", flush=True)
        compare_frame(d2_model, mm_model, image, report, row["frame_id"])
    compare_deform_conv(report, args.seed)

    failed = [row["stage"] for row in report.rows if not row["ok"]]
    print(
        f"{len(report.rows) - len(failed)}/{len(report.rows)} stages within tolerance "
        f"({time.time() - started:.0f} s){': FAILED ' + ', '.join(failed) if failed else ''}"
    )
    if args.json:
        args.json.write_text(json.dumps(dict(rows=report.rows, ok=report.ok, **figures), indent=1))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
