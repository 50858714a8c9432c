"""Size and cost of a teacher's three models, against the paper's Table 1 (`labels weights --info`).

Models are built from their configs (no checkpoint needed). FLOPs are counted by torch's flop
counter around one forward (convolutions and matrix products, 2 FLOPs per multiply-add), with
each deformable convolution counted as the convolution it generalises (mmcv's op is invisible to
torch's counter; its bilinear sampling is not counted); RoIAlign, NMS and other custom ops are not
counted. The detector is measured on one view at detectron2's 1x test scale of a 640x480 frame
(shorter side 800: 1067x800) in parts whose cost does not depend on the image: backbone, FPN and
RPN; the cascade's box heads for 1000 proposals (the RPN's test-time count); the mask head per
detection. The keypoint model is measured on one person crop, the lifter on one pose.
Papers of the detectron2 era count multiply-adds (fvcore: 1 "flop" per multiply-add); both are
printed.
"""

from __future__ import annotations

import torch

from orpose.configs.schema import CONFIG_DIR, TeacherConfig

__all__ = ["PAPER_TABLE1", "count_parameters", "counted_flops", "teacher_info_lines"]

# Srivastav et al. 2020 (seed 000), Table 1, the teacher at 1x scale.
PAPER_TABLE1 = {"parameters": 250.1e6, "gflops": 1048.8}


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(all parameters, the affine parameters of frozen BatchNorm layers). detectron2's FrozenBN
    keeps those as buffers, so its parameter count is the difference."""
    total = sum(p.numel() for p in model.parameters())
    frozen = sum(
        p.numel()
        for m in model.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        for p in m.parameters(recurse=False)
        if not p.requires_grad
    )
    return total, frozen


def counted_flops(model: torch.nn.Module, forward) -> float:
    """FLOPs of `forward()` (see the module docstring for what is counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    deformable = []

    def count_deformable(module, inputs, output):
        in_channels = module.in_channels // module.groups
        kh, kw = module.kernel_size
        deformable.append(2.0 * output.numel() * in_channels * kh * kw)

    try:
        from mmcv.ops import DeformConv2d, ModulatedDeformConv2d

        kinds = (DeformConv2d, ModulatedDeformConv2d)
    except ImportError:  # mmcv without its ops: no deformable layers can exist either
        kinds = ()
    hooks = [m.register_forward_hook(count_deformable) for m in model.modules() if kinds and isinstance(m, kinds)]
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            forward()
    finally:
        for hook in hooks:
            hook.remove()
    return counter.get_total_flops() + sum(deformable)


def _detector_flops(model, height: int, width: int, proposals: int = 1000) -> tuple[float, float, float]:
    """(backbone + FPN + RPN, box heads of every cascade stage for `proposals` boxes, mask head
    per detection) FLOPs of a two-stage mmdet detector on one height x width view."""
    from mmdet.structures.bbox import bbox2roi

    generator = torch.Generator().manual_seed(0)
    x = torch.zeros(1, 3, height, width)
    features = []  # kept from the counted forward, for the heads below

    def backbone_neck_rpn():
        features.extend(model.extract_feat(x))
        model.rpn_head(tuple(features))

    dense = counted_flops(model, backbone_neck_rpn)
    features = tuple(features)
    corners = torch.rand(proposals, 2, generator=generator) * torch.tensor([width - 64.0, height - 64.0])
    sizes = 16 + torch.rand(proposals, 2, generator=generator) * 300
    rois = bbox2roi([torch.cat([corners, corners + sizes], dim=1)])
    head = model.roi_head
    stages = getattr(head, "num_stages", 1)
    if stages > 1:
        boxes = counted_flops(model, lambda: [head._bbox_forward(stage, features, rois) for stage in range(stages)])
        mask = counted_flops(model, lambda: head._mask_forward(len(head.mask_head) - 1, features, rois[:1]))
    else:
        boxes = counted_flops(model, lambda: head._bbox_forward(features, rois))
        mask = counted_flops(model, lambda: head._mask_forward(features, rois[:1])) if head.with_mask else 0.0
    return dense, boxes, mask


def teacher_info_lines(config: TeacherConfig, detector_size: tuple[int, int] = (800, 1067)) -> list[str]:
    from orpose.teachers.mm import build_mm_model, load_mm_config

    lines = [f"teacher {config.name!r} (built from its configs; weights not needed)"]
    rows = []
    for role, scope, spec in (
        ("detector", "mmdet", config.detector),
        ("keypoints", "mmpose", config.keypoints),
        ("lifter", "mmpose", config.lifter),
    ):
        cfg = load_mm_config(spec.mm_config, spec.cfg_options, CONFIG_DIR)
        model = build_mm_model(scope, cfg).eval()
        total, frozen = count_parameters(model)
        if role == "detector":
            dense, boxes, mask = _detector_flops(model, *detector_size)
            flops, unit = dense + boxes + mask, f"one {detector_size[1]}x{detector_size[0]} view, 1 mask"
            lines.append(
                f"  detector parts: backbone+FPN+RPN {dense / 2e9:.1f} GMAC, box heads for 1000 proposals "
                f"{boxes / 2e9:.1f} GMAC, mask head {mask / 2e9:.2f} GMAC per detection"
            )
        elif role == "keypoints":
            height, width = cfg.codec["input_size"][1], cfg.codec["input_size"][0]
            x = torch.zeros(1, 3, height, width)
            flops, unit = (
                counted_flops(model, lambda: model.head.forward(model.extract_feat(x))),
                f"one {width}x{height} crop",
            )
        else:
            x = torch.zeros(1, 34, 1)
            flops, unit = counted_flops(model, lambda: model.head.forward(model.extract_feat(x))), "one pose"
        rows.append((role, total, frozen, flops))
        frozen_note = (
            f" ({(total - frozen) / 1e6:.2f} M without {frozen / 1e6:.2f} M frozen BatchNorm affine)" if frozen else ""
        )
        lines.append(
            f"  {role:<9} {total / 1e6:8.2f} M parameters{frozen_note}, {flops / 1e9:8.1f} GFLOP "
            f"({flops / 2e9:.1f} GMAC) for {unit}  [{spec.mm_config}]"
        )
    total = sum(r[1] for r in rows)
    without_frozen = sum(r[1] - r[2] for r in rows)
    per_image = rows[0][3] + rows[1][3] + rows[2][3]
    lines.append(
        f"  teacher   {total / 1e6:8.2f} M parameters ({without_frozen / 1e6:.2f} M counted as detectron2 does), "
        f"{per_image / 1e9:.1f} GFLOP ({per_image / 2e9:.1f} GMAC) per image with one person, "
        f"+{(rows[1][3] + rows[2][3]) / 2e9:.1f} GMAC per further person"
    )
    lines.append(
        f"  paper (Table 1, 1x scale): {PAPER_TABLE1['parameters'] / 1e6:.1f} M parameters, "
        f"{PAPER_TABLE1['gflops']:.1f} GFLOPs per image"
    )
    return lines
