"""mmcv's compiled extension module (`mmcv._ext`), provided on torchvision's kernels where mmcv-lite is installed.

mmcv-lite is OpenMMLab's own build of mmcv without compiled ops: the same `mmcv` package, a pure wheel, no
compiler at install time. Its `mmcv.ops` modules are all there but cannot be imported: each one calls
`mmcv.utils.ext_loader.load_ext('_ext', [names])`, which imports `mmcv._ext` and checks that every name
exists on it. `install()` registers this project's stand-in under that name when the real one is missing:

- the functions the teacher and its training use run on torchvision's kernels, which ship compiled for CPU
  and CUDA in torchvision's wheel: RoIAlign forward and backward (average pooling), NMS, deformable
  convolution v1 forward and backward (`KERNELS`); each one computes what mmcv's kernel computes
  (tests/teachers/test_mmcv_ext.py: known answers, and equality with compiled mmcv where it is installed);
- every other function of mmcv's extension raises `CompiledOpMissing`, naming the op and how to get
  compiled mmcv (`make setup MMCV=full`).

`install()` runs when the `teachers` package is imported, before any model is built, in every process that
builds one (the driver, Ray workers, the local executor, `training.tiny`, tests): nothing to do for a user,
and nothing is written into mmcv's folder. Where compiled mmcv is installed, its own `_ext` is used and this
module does nothing.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path

from orpose.errors import OrPoseError

__all__ = ["CompiledOpMissing", "KERNELS", "install", "compiled_mmcv", "provided", "stand_in"]

MODULE = "mmcv._ext"
HOW_TO_GET_IT = (
    "install mmcv with its compiled ops: `make setup MMCV=full` (a compile of 10 to 30 minutes; README, Install)"
)


class CompiledOpMissing(OrPoseError, RuntimeError):
    """An op of mmcv's compiled extension that mmcv-lite lacks and torchvision does not provide."""

    def __init__(self, op: str):
        super().__init__(
            op
            if " " in op  # a whole message (teachers.kernels: a config field that asks for a compiled op)
            else f"mmcv op '{op}' needs mmcv's compiled extension, which this install (mmcv-lite) does not have; "
            + HOW_TO_GET_IT
        )
        self.op = op


def _roi_align_forward(
    input, rois, output, argmax_y, argmax_x, aligned_height, aligned_width, spatial_scale, sampling_ratio, pool_mode,
    aligned,
):  # fmt: skip
    """mmcv's `roi_align_forward`: writes into `output`. Average pooling only (pool_mode 1): torchvision's
    RoIAlign averages; mmcv's own layers choose it too (`use_torchvision`) and agree (test_kernels.py)."""
    from torchvision.ops import roi_align

    if pool_mode != 1:
        raise CompiledOpMissing("roi_align_forward (pool_mode='max')")
    output.copy_(roi_align(input, rois, (aligned_height, aligned_width), spatial_scale, sampling_ratio, aligned))


def _roi_align_backward(
    grad_output, rois, argmax_y, argmax_x, grad_input, aligned_height, aligned_width, spatial_scale, sampling_ratio,
    pool_mode, aligned,
):  # fmt: skip
    """mmcv's `roi_align_backward`: writes the input's gradient into `grad_input` (torchvision's backward kernel)."""
    import torch

    if pool_mode != 1:
        raise CompiledOpMissing("roi_align_backward (pool_mode='max')")
    batch, channels, height, width = grad_input.shape
    grad_input.copy_(
        torch.ops.torchvision._roi_align_backward(
            grad_output,
            rois,
            spatial_scale,
            aligned_height,
            aligned_width,
            batch,
            channels,
            height,
            width,
            sampling_ratio,
            aligned,
        )  # fmt: skip
    )


def _nms(boxes, scores, iou_threshold: float, offset: int = 0):
    """mmcv's `nms`: indices of the kept boxes, best first, visiting equal scores in mmcv's order."""
    from orpose.teachers.kernels import torchvision_nms

    return torchvision_nms(boxes, scores, iou_threshold, offset)


def _deform_conv(input, weight, offset, stride, padding, dilation):
    from torchvision.ops import deform_conv2d

    # groups and offset groups follow from the shapes of weight and offset, as mmcv passes them
    return deform_conv2d(input, offset, weight, None, stride, padding, dilation)


def _deform_conv_forward(
    input, weight, offset, output, columns, ones, kW, kH, dW, dH, padW, padH, dilationW, dilationH, group,
    deformable_group, im2col_step,
):  # fmt: skip
    """mmcv's `deform_conv_forward` (DCN v1): writes into `output`."""
    output.copy_(_deform_conv(input, weight, offset, (dH, dW), (padH, padW), (dilationH, dilationW)))


def _deform_conv_grads(input, weight, offset, grad_output, stride, padding, dilation, wrt: str):
    import torch

    with torch.enable_grad():
        x, w, o = (t.detach().requires_grad_(name in wrt) for t, name in ((input, "i"), (weight, "w"), (offset, "o")))
        out = _deform_conv(x, w, o, stride, padding, dilation)
        wanted = [t for t, name in ((x, "i"), (o, "o"), (w, "w")) if name in wrt]
        return torch.autograd.grad(out, wanted, grad_output)


def _deform_conv_backward_input(
    input, offset, grad_output, grad_input, grad_offset, weight, columns, kW, kH, dW, dH, padW, padH, dilationW,
    dilationH, group, deformable_group, im2col_step,
):  # fmt: skip
    """mmcv's `deform_conv_backward_input`: the gradients of the input and the offsets (torchvision's backward)."""
    grads = _deform_conv_grads(
        input, weight, offset, grad_output, (dH, dW), (padH, padW), (dilationH, dilationW), wrt="io"
    )
    grad_input.copy_(grads[0])
    grad_offset.copy_(grads[1])


def _deform_conv_backward_parameters(
    input, offset, grad_output, grad_weight, columns, ones, kW, kH, dW, dH, padW, padH, dilationW, dilationH, group,
    deformable_group, scale, im2col_step,
):  # fmt: skip
    """mmcv's `deform_conv_backward_parameters`: adds scale x the weight's gradient to `grad_weight`."""
    (grad,) = _deform_conv_grads(
        input, grad_weight, offset, grad_output, (dH, dW), (padH, padW), (dilationH, dilationW), wrt="w"
    )
    grad_weight.add_(grad, alpha=scale)


KERNELS = {
    "roi_align_forward": _roi_align_forward,
    "roi_align_backward": _roi_align_backward,
    "nms": _nms,
    "deform_conv_forward": _deform_conv_forward,
    "deform_conv_backward_input": _deform_conv_backward_input,
    "deform_conv_backward_parameters": _deform_conv_backward_parameters,
}


class _Extension(types.ModuleType):
    """The stand-in module: KERNELS on torchvision, any other name a function raising CompiledOpMissing
    (mmcv's loader asks only that each name exists; the error comes if the op is ever called)."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)

        def missing(*args, **kwargs):
            raise CompiledOpMissing(name)

        missing.__name__ = missing.__qualname__ = name
        return missing


def compiled_mmcv() -> bool:
    """True when mmcv's own compiled extension is installed (the full mmcv, not mmcv-lite). Looks at mmcv's
    folder for the extension's file, without importing mmcv."""
    current = sys.modules.get(MODULE)
    if current is not None:
        return not isinstance(current, _Extension)
    spec = importlib.util.find_spec("mmcv")
    if spec is None or not spec.submodule_search_locations:
        return False
    return any(any(Path(folder).glob("_ext.*")) for folder in spec.submodule_search_locations)


def provided() -> bool:
    """True when `mmcv._ext` is this module's stand-in."""
    return isinstance(sys.modules.get(MODULE), _Extension)


def stand_in() -> types.ModuleType:
    """A new stand-in module (what `install` registers)."""
    module = _Extension(MODULE, "mmcv's extension on torchvision's kernels (teachers.mmcv_ext)")
    # A spec without a loader: importlib.util.find_spec and pkgutil.find_loader answer (mmengine's
    # mmcv_full_available asks, and raised on a module without one) and say that no compiled mmcv is there.
    module.__spec__ = importlib.machinery.ModuleSpec(MODULE, loader=None)
    for name, function in KERNELS.items():
        setattr(module, name, function)
    return module


def install() -> bool:
    """Register the stand-in as `mmcv._ext` unless compiled mmcv (or no mmcv) is installed; True when it is
    in place. Idempotent, and harmless after `mmcv.ops` was imported with the real extension."""
    if provided():
        return True
    if importlib.util.find_spec("mmcv") is None or compiled_mmcv():
        return False
    sys.modules[MODULE] = stand_in()
    return True
