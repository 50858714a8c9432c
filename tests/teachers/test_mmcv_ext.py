"""mmcv's extension on torchvision's kernels (teachers/mmcv_ext.py), what mmcv-lite installs run on.

Its ops are called with mmcv's own signatures (buffers written in place) and checked against known answers
and torchvision's own functions; then mmcv's Python ops (`RoIAlign`, `nms`, `deform_conv2d`, forward and
backward) are run on the stand-in in a fresh process, where it is registered before `mmcv.ops` is imported,
whichever mmcv this environment has. An op without a kernel names itself; a config asking for mmcv's
compiled kernel is refused where only mmcv-lite is installed."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from orpose.teachers import mmcv_ext
from orpose.teachers.install_check import require_compiled_ops
from orpose.teachers.mmcv_ext import KERNELS, CompiledOpMissing, stand_in

ROOT = Path(__file__).parents[2]


def test_roi_align_forward_and_backward_write_torchvisions_numbers_in_place():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(2, 4, 12, 16, generator=generator)
    rois = torch.tensor([[0.0, 1.0, 1.0, 9.0, 7.0], [1.0, -3.0, 2.0, 20.0, 15.0], [0.0, 4.0, 4.0, 4.0, 4.0]])
    output = features.new_zeros(3, 4, 5, 5)
    empty = features.new_zeros(0)
    KERNELS["roi_align_forward"](features, rois, output, empty, empty, 5, 5, 0.5, 2, 1, True)
    expected = roi_align(features, rois, (5, 5), 0.5, 2, True)
    torch.testing.assert_close(output, expected, rtol=0, atol=0)

    grad_output = torch.randn(3, 4, 5, 5, generator=generator)
    grad_input = torch.zeros_like(features)
    KERNELS["roi_align_backward"](grad_output, rois, empty, empty, grad_input, 5, 5, 0.5, 2, 1, True)
    leaf = features.clone().requires_grad_()
    (expected_grad,) = torch.autograd.grad(roi_align(leaf, rois, (5, 5), 0.5, 2, True), leaf, grad_output)
    torch.testing.assert_close(grad_input, expected_grad, rtol=0, atol=0)
    # the gradient's total is the output gradient's: every sample's bilinear weights sum to one
    inside = grad_output[0].sum()  # RoI 0 lies inside its image
    assert expected_grad.abs().sum() > 0 and torch.isfinite(inside)
    with pytest.raises(CompiledOpMissing, match="roi_align_forward \\(pool_mode='max'\\)"):
        KERNELS["roi_align_forward"](features, rois, output, output, output, 5, 5, 0.5, 2, 0, True)


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]])  # IoU(0, 1) = 0.68
    assert KERNELS["nms"](boxes, torch.tensor([0.8, 0.9, 0.7]), 0.5).tolist() == [1, 2]
    assert KERNELS["nms"](boxes, torch.tensor([0.8, 0.9, 0.7]), 0.7).tolist() == [1, 0, 2]


def test_deform_conv_with_zero_offsets_is_a_convolution_forward_and_backward():
    """Known answer: with every offset 0, DCN v1 is a plain convolution, and so are its gradients."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 9, 11, generator=generator)
    weight = torch.randn(6, 2, 3, 3, generator=generator)  # 2 groups
    offset = torch.zeros(2, 18, 5, 6)  # stride 2, padding 1
    geometry = dict(kW=3, kH=3, dW=2, dH=2, padW=1, padH=1, dilationW=1, dilationH=1, group=2, deformable_group=1)
    output = torch.empty(2, 6, 5, 6)
    empty = x.new_empty(0)
    KERNELS["deform_conv_forward"](x, weight, offset, output, empty, empty, **geometry, im2col_step=2)
    torch.testing.assert_close(output, F.conv2d(x, weight, stride=2, padding=1, groups=2), rtol=1e-5, atol=1e-5)

    grad_output = torch.randn(2, 6, 5, 6, generator=generator)
    leaf_x, leaf_w = x.clone().requires_grad_(), weight.clone().requires_grad_()
    expected_x, expected_w = torch.autograd.grad(
        F.conv2d(leaf_x, leaf_w, stride=2, padding=1, groups=2), (leaf_x, leaf_w), grad_output
    )
    grad_x, grad_offset = torch.zeros_like(x), torch.zeros_like(offset)
    KERNELS["deform_conv_backward_input"](x, offset, grad_output, grad_x, grad_offset, weight, empty, **geometry,
                                          im2col_step=2)  # fmt: skip
    torch.testing.assert_close(grad_x, expected_x, rtol=1e-4, atol=1e-4)
    assert grad_offset.abs().sum() > 0  # moving a sample changes the output
    grad_w = torch.ones_like(weight)  # mmcv's kernel adds scale x the gradient to what is there
    KERNELS["deform_conv_backward_parameters"](x, offset, grad_output, grad_w, empty, empty, **geometry, scale=1,
                                               im2col_step=2)  # fmt: skip
    torch.testing.assert_close(grad_w, expected_w + 1, rtol=1e-4, atol=1e-4)


def test_an_op_without_a_kernel_names_itself_and_how_to_get_it():
    module = stand_in()
    assert hasattr(module, "ball_query_forward")  # mmcv's loader only checks that the names exist
    with pytest.raises(CompiledOpMissing, match=r"mmcv op 'ball_query_forward'.*make setup MMCV=full"):
        module.ball_query_forward(torch.zeros(1))
    assert module.nms is KERNELS["nms"]


def test_a_config_asking_for_mmcvs_compiled_kernel_is_refused_without_it(monkeypatch):
    monkeypatch.setattr(mmcv_ext, "compiled_mmcv", lambda: False)
    with pytest.raises(CompiledOpMissing, match=r"detector.nms=mmcv asks for mmcv's compiled kernel.*mmcv-lite"):
        require_compiled_ops({"detector.roi_align": "torchvision", "detector.nms": "mmcv"})
    require_compiled_ops({"detector.nms": "torchvision", "detector.deform_conv": "torchvision"})
    monkeypatch.setattr(mmcv_ext, "compiled_mmcv", lambda: True)
    require_compiled_ops({"detector.nms": "mmcv"})


MMCV_ON_THE_STAND_IN = r"""
import sys
import torch
from orpose.teachers.mmcv_ext import stand_in, CompiledOpMissing
assert "mmcv.ops" not in sys.modules
sys.modules["mmcv._ext"] = stand_in()  # whatever mmcv is installed: its ops now call the stand-in
from mmcv.ops import RoIAlign, nms, batched_nms, DeformConv2dPack, ball_query
from torchvision.ops import roi_align, deform_conv2d, nms as tv_nms
g = torch.Generator().manual_seed(0)
x = torch.randn(1, 4, 16, 16, generator=g, requires_grad=True)
rois = torch.tensor([[0.0, 2, 2, 12, 10], [0, -4, 0, 30, 9]])
layer = RoIAlign(7, 0.5, 2, "avg", aligned=True)  # mmcv's own path (not use_torchvision)
out = layer(x, rois)
out.sum().backward()
leaf = x.detach().clone().requires_grad_()
roi_align(leaf, rois, (7, 7), 0.5, 2, True).sum().backward()
assert torch.equal(out, roi_align(x.detach(), rois, (7, 7), 0.5, 2, True)) and torch.equal(x.grad, leaf.grad)
boxes = torch.rand(50, 2, generator=g) * 50
boxes = torch.cat([boxes, boxes + 15], 1)
scores = torch.rand(50, generator=g)
_, keep = nms(boxes, scores, 0.5)
assert keep.tolist() == tv_nms(boxes, scores, 0.5).tolist()
_, keep = batched_nms(boxes, scores, torch.zeros(50, dtype=torch.long), dict(type="nms", iou_threshold=0.5))
assert len(keep) > 0
dcn = DeformConv2dPack(4, 4, 3, padding=1)
torch.nn.init.normal_(dcn.conv_offset.weight, std=0.1)
y = dcn(x)
y.sum().backward()
assert dcn.weight.grad is not None and dcn.conv_offset.weight.grad.abs().sum() > 0
expected = deform_conv2d(x.detach(), dcn.conv_offset(x.detach()), dcn.weight.detach(), None, 1, 1, 1)
torch.testing.assert_close(y.detach(), expected, rtol=0, atol=0)
try:
    ball_query(0, 1, 4, torch.zeros(1, 4, 3), torch.zeros(1, 4, 3))
except CompiledOpMissing as error:
    assert "ball_query_forward" in str(error)
else:
    raise AssertionError("ball_query ran without a kernel")
print("ok")
"""


def test_mmcvs_ops_run_forward_and_backward_on_the_stand_in():
    result = subprocess.run(
        [sys.executable, "-c", MMCV_ON_THE_STAND_IN], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


def test_the_stand_in_is_in_place_exactly_where_compiled_mmcv_is_not():
    import mmcv.ops  # noqa: F401  (imports with either extension)

    assert mmcv_ext.provided() != mmcv_ext.compiled_mmcv()
    assert mmcv_ext.install() == mmcv_ext.provided()  # idempotent


def test_the_stand_in_answers_importlib_and_says_no_compiled_mmcv():
    """mmengine's Runner asks `pkgutil.find_loader("mmcv._ext")` (mmcv_full_available): it raised on a module
    without a spec and stopped every training on mmcv-lite. The stand-in has a spec without a loader."""
    import importlib.util
    import pkgutil
    import sys

    module = mmcv_ext.stand_in()
    previous = sys.modules.get("mmcv._ext")
    sys.modules["mmcv._ext"] = module
    try:
        assert importlib.util.find_spec("mmcv._ext").name == "mmcv._ext"
        assert pkgutil.find_loader("mmcv._ext") is None
        from mmengine.utils.dl_utils import mmcv_full_available

        assert mmcv_full_available() is False
    finally:
        if previous is None:
            sys.modules.pop("mmcv._ext", None)
        else:
            sys.modules["mmcv._ext"] = previous
