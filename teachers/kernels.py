"""Which kernel runs each compiled op of the detector: torchvision's or mmcv's.

mmcv's compiled ops (RoIAlign, NMS, deformable convolution) need a CUDA toolkit matching torch's
CUDA at install time to run on a GPU, the most common way OpenMMLab installs fail. torchvision's
wheel ships the same three ops compiled for CPU and CUDA. Each op here has a torchvision kernel
that computes mmcv's numbers (tests/teachers/test_kernels.py: known answers and equality with
mmcv on CPU), chosen per op in the detector config (`detector.roi_align`, `detector.nms`,
`detector.deform_conv`, default "torchvision"); "mmcv" keeps the model exactly as its mmdet config
builds it. With every op on torchvision, inference never enters mmcv's compiled extension, so
`make setup` builds mmcv's CPU ops only and the teacher runs on CUDA anyway.

How each switch is made:
- RoIAlign: mmcv's layer has the switch itself (`use_torchvision`), per layer.
- deformable convolution v1 (`DeformConv2dPack`, mmdet's "DCN"): the layer's class becomes a
  subclass whose forward calls `torchvision.ops.deform_conv2d` (same offset layout: (dy, dx) per
  kernel tap, per offset group). Parameters, buffers and state-dict keys are untouched, so it can
  be switched back and a checkpoint loads the same either way.
- deformable convolution, "matmul" (`detector.deform_conv=matmul`): the same subclass trick, the forward
  written in plain torch ops (`deform_conv2d_matmul`): every kernel tap's input sampled bilinearly at its
  offset position (`grid_sample`), then one batched matrix product over the convolution's groups. torchvision's
  kernel autocasts to fp32 and runs a matrix product per group (the X-152 has 32); this one's product runs in
  the autocast precision on tensor cores. Equal to torchvision's in fp32 (tests/teachers/test_kernels.py).
- NMS: mmdet's RPN and RoI heads call mmcv's `batched_nms` with their test_cfg's `nms` settings, and
  `batched_nms` calls `nms.type` when it is a function: `set_nms_kernel` sets it to torchvision's
  (`torchvision_nms_dets`) or back to 'nms' (mmcv's), per model, when the model is built.

Where mmcv-lite is installed (the default), mmcv's extension itself is provided on these kernels
(`teachers.mmcv_ext`): a config asking for "mmcv" then needs compiled mmcv and is refused before any
frame is labelled (`teachers.install_check.require_compiled_ops`).
"""

from __future__ import annotations

import functools
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "Kernel",
    "set_nms_kernel",
    "torchvision_nms_dets",
    "set_deform_conv_kernel",
    "set_roi_align_kernel",
    "torchvision_deform_conv2d_pack",
    "matmul_deform_conv2d_pack",
    "deform_conv2d_matmul",
    "torchvision_nms",
]

Kernel = Literal["torchvision", "mmcv"]
DeformKernel = Literal["torchvision", "mmcv", "matmul"]


def _check(kernel: str, known: tuple[str, ...] = ("torchvision", "mmcv")) -> None:
    if kernel not in known:
        raise ValueError(f"kernel must be one of {', '.join(repr(k) for k in known)}, not {kernel!r}")


# --- RoIAlign -----------------------------------------------------------------------------------


def set_roi_align_kernel(model: torch.nn.Module, kernel: Kernel) -> int:
    """Point every average-pooling mmcv RoIAlign layer of `model` at `kernel`; returns how many
    layers that is. torchvision's kernel only averages, so max-pooling layers keep mmcv's."""
    _check(kernel)
    from mmcv.ops import RoIAlign

    layers = [m for m in model.modules() if isinstance(m, RoIAlign) and m.pool_mode == "avg"]
    for layer in layers:
        layer.use_torchvision = kernel == "torchvision"
    return len(layers)


# --- NMS ------------------------------------------------------------------------------------------


def torchvision_nms(
    boxes: Tensor, scores: Tensor, iou_threshold: float, offset: int = 0, score_threshold: float = 0, max_num: int = -1
) -> Tensor:
    """mmcv's `NMSop.forward` contract on torchvision's kernel: indices into `boxes` of the kept
    boxes, best score first. A box is dropped when its IoU with a kept better one is > the
    threshold (both kernels: strictly greater, same float32 formula). `score_threshold` > 0 first
    drops boxes scoring <= it; `max_num` > 0 keeps that many. torchvision has no `offset` (the
    "+1" pixel convention of old detectors); mmdet 3 always passes 0.

    Ties: mmcv's kernel visits boxes in the order of `scores.sort(0, descending=True)`, an
    unstable sort, so among equal scores the order (and with overlaps, which box survives) is
    torch's implementation order, not the input order; torchvision's sorts stably. With many
    equal scores the two kept different boxes (measured: 648 kept of 2000 boxes with 6 distinct
    scores, different sets). So the boxes are put in mmcv's order here, by the same sort call,
    and torchvision's kernel gets a strictly decreasing rank instead of the scores: it then
    visits them in exactly that order whatever its own sort does."""
    from torchvision.ops import nms

    if offset != 0:
        raise ValueError(f"torchvision's NMS has no pixel offset (asked for offset={offset}): set detector.nms='mmcv'")
    valid = None
    if score_threshold > 0:
        keep_mask = scores > score_threshold
        valid = torch.nonzero(keep_mask, as_tuple=False).squeeze(1)
        boxes, scores = boxes[keep_mask], scores[keep_mask]
    order = scores.sort(0, descending=True)[1]
    rank = torch.arange(len(order), 0, -1, dtype=torch.float32, device=scores.device)
    inds = order[nms(boxes[order].float(), rank, float(iou_threshold))]
    if max_num > 0:
        inds = inds[:max_num]
    return valid[inds] if valid is not None else inds


def torchvision_nms_dets(
    boxes: Tensor, scores: Tensor, iou_threshold: float, offset: int = 0, score_threshold: float = 0, max_num: int = -1
) -> tuple[Tensor, Tensor]:
    """mmcv's `nms` function contract (kept boxes with their scores, and their indices) on torchvision's
    kernel: what `batched_nms` calls when a head's `nms.type` is this function instead of 'nms'."""
    inds = torchvision_nms(boxes, scores, iou_threshold, offset, score_threshold, max_num)
    return torch.cat((boxes[inds], scores[inds].reshape(-1, 1)), dim=1), inds


def _nms_configs(model: torch.nn.Module) -> list:
    """The `nms` settings of every head of `model` that runs NMS through mmcv's `batched_nms` (the RPN's
    and the RoI heads' test_cfg): config dicts with a `type`."""
    found, seen = [], set()
    for module in model.modules():
        cfg = getattr(module, "test_cfg", None)
        stack = [cfg] if cfg is not None else []
        while stack:
            item = stack.pop()
            if id(item) in seen or not hasattr(item, "get"):
                continue
            seen.add(id(item))
            nms = item.get("nms")
            if nms is not None and hasattr(nms, "get") and "type" in nms:
                found.append(nms)
            stack += [v for v in item.values() if hasattr(v, "get")]
    return found


def set_nms_kernel(model: torch.nn.Module, kernel: Kernel) -> int:
    """Run every NMS of `model`'s heads (mmdet's RPN and RoI heads call mmcv's `batched_nms` with their
    test_cfg's `nms`) on `kernel`; returns how many NMS settings that is. Chosen once, when the model is
    built: `batched_nms` calls `nms.type` when it is a function, so each model holds its own kernel and
    nothing global changes during a forward pass (two models in two threads cannot see each other's)."""
    _check(kernel)
    configs = _nms_configs(model)
    for nms in configs:
        current = nms["type"]
        if current in ("nms", torchvision_nms_dets):
            nms["type"] = torchvision_nms_dets if kernel == "torchvision" else "nms"
        elif kernel == "torchvision":
            raise ValueError(f"NMS type {current!r} has no torchvision kernel here: set detector.nms='mmcv'")
    return len(configs)


# --- deformable convolution v1 -----------------------------------------------------------------------


def _deform_conv2d_pack_class():
    from mmcv.ops import DeformConv2dPack

    return DeformConv2dPack


class _TorchvisionDeformForward:
    """The forward of mmcv's `DeformConv2dPack` on torchvision's kernel (mixed into a subclass
    made on first use, so that importing this module does not import mmcv.ops)."""

    def forward(self, x: Tensor) -> Tensor:
        from torchvision.ops import deform_conv2d

        offset = self.conv_offset(x)
        # groups and offset groups follow from the shapes of weight and offset (mmcv passes them). In reduced
        # precision the kernel runs in fp32, as torchvision's CUDA autocast rule does: its CPU kernel has no bf16
        # ("deformable_im2col" not implemented for 'BFloat16': the paper teacher in bf16 on a CPU failed so).
        compute = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        out = deform_conv2d(
            x.to(compute), offset.to(compute), self.weight.to(compute), None, self.stride, self.padding, self.dilation
        )
        return out.to(x.dtype)


@functools.cache
def torchvision_deform_conv2d_pack() -> type:
    """The `DeformConv2dPack` subclass whose forward runs torchvision's kernel."""
    return type("TorchvisionDeformConv2dPack", (_TorchvisionDeformForward, _deform_conv2d_pack_class()), {})


def deform_conv2d_matmul(
    x: Tensor,
    offset: Tensor,
    weight: Tensor,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
) -> Tensor:
    """Deformable convolution v1 (no mask, no bias) as torchvision's `deform_conv2d` computes it, in plain torch
    ops: for each kernel tap, the input sampled bilinearly at the tap's position plus its offset ((dy, dx) per
    tap per offset group, as torchvision's layout; zero outside the image), then one batched matrix product over
    the groups. x (N, C, H, W), offset (N, 2 x offset groups x kh x kw, Ho, Wo), weight (O, C / groups, kh, kw).
    The sampled columns take C x kh x kw x Ho x Wo values per image."""
    import torch.nn.functional as F

    n, c, h, w = x.shape
    out_channels, group_channels, kh, kw = weight.shape
    groups, taps = c // group_channels, kh * kw
    offset_groups = offset.shape[1] // (2 * taps)
    ho, wo = offset.shape[2:]
    position = dict(device=x.device, dtype=torch.float32)
    tap_y = (torch.arange(kh, **position) * dilation[0]).repeat_interleave(kw)  # (taps,), row-major taps
    tap_x = (torch.arange(kw, **position) * dilation[1]).repeat(kh)
    rows = torch.arange(ho, **position) * stride[0] - padding[0]
    cols = torch.arange(wo, **position) * stride[1] - padding[1]
    moves = offset.float().view(n, offset_groups, taps, 2, ho, wo)
    y = tap_y.view(taps, 1, 1) + rows.view(1, ho, 1) + moves[:, :, :, 0]  # (n, offset groups, taps, ho, wo)
    x_at = tap_x.view(taps, 1, 1) + cols.view(1, 1, wo) + moves[:, :, :, 1]
    # grid_sample's align_corners=True maps -1 and 1 to the first and last pixel centres; zeros outside, as
    # torchvision's bilinear sampling (a corner outside the image contributes nothing)
    grid = torch.stack((x_at * (2 / max(w - 1, 1)) - 1, y * (2 / max(h - 1, 1)) - 1), dim=-1)
    sampled = F.grid_sample(
        x.reshape(n * offset_groups, c // offset_groups, h, w),
        grid.view(n * offset_groups, taps * ho, wo, 2).to(x.dtype),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=True,
    )  # (n x offset groups, C / offset groups, taps x ho, wo)
    columns = sampled.view(n, groups, group_channels * taps, ho * wo)  # (c, tap) order, as the weight's
    kernels = weight.reshape(groups, out_channels // groups, group_channels * taps)
    return torch.matmul(kernels.to(columns.dtype), columns).view(n, out_channels, ho, wo)


class _MatmulDeformForward:
    """The forward of mmcv's `DeformConv2dPack` on `deform_conv2d_matmul`."""

    def forward(self, x: Tensor) -> Tensor:
        offset = self.conv_offset(x)
        return deform_conv2d_matmul(x, offset, self.weight, self.stride, self.padding, self.dilation)


@functools.cache
def matmul_deform_conv2d_pack() -> type:
    """The `DeformConv2dPack` subclass whose forward runs `deform_conv2d_matmul`."""
    return type("MatmulDeformConv2dPack", (_MatmulDeformForward, _deform_conv2d_pack_class()), {})


def set_deform_conv_kernel(model: torch.nn.Module, kernel: DeformKernel) -> int:
    """Run every deformable convolution v1 layer of `model` (mmcv `DeformConv2dPack`, mmdet's
    "DCN") on `kernel`; returns how many layers that is. Modulated (v2) layers are not switched:
    asking for torchvision or matmul with one present is an error that names it."""
    _check(kernel, ("torchvision", "mmcv", "matmul"))
    from mmcv.ops import DeformConv2d, ModulatedDeformConv2d

    pack = _deform_conv2d_pack_class()
    target = {"torchvision": torchvision_deform_conv2d_pack(), "matmul": matmul_deform_conv2d_pack(), "mmcv": pack}
    count = 0
    for name, module in model.named_modules():
        if isinstance(module, pack):
            module.__class__ = target[kernel]
            count += 1
        elif kernel != "mmcv" and isinstance(module, (ModulatedDeformConv2d, DeformConv2d)):
            raise ValueError(
                f"layer {name!r} is {type(module).__name__}, which has no {kernel} kernel here "
                "(only DeformConv2dPack, DCN v1): set detector.deform_conv='mmcv'"
            )
    return count
