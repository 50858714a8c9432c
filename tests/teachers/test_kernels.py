"""torchvision's kernels compute mmcv's numbers (teachers/kernels.py), op by op, on CPU: known
answers first (where each kernel's convention shows: borders, empty inputs, equal scores), then
equality with mmcv's compiled op on random inputs that cross the borders.

mmcv's functions (`mmcv.ops.nms`, `roi_align`, `deform_conv2d`) call mmcv's extension: compiled mmcv's
where it is installed (`make setup MMCV=full`), else the project's on torchvision (teachers/mmcv_ext.py).
The known answers hold for both; the equality tests need compiled mmcv and skip without it."""

import sys
import threading

import pytest
import torch
import torch.nn.functional as F
from mmcv.ops import DeformConv2dPack, ModulatedDeformConv2dPack, RoIAlign, batched_nms, nms
from mmcv.ops import deform_conv2d as mmcv_deform_conv2d
from torchvision.ops import deform_conv2d as torchvision_deform_conv2d

from orpose.teachers.kernels import (
    deform_conv2d_matmul,
    matmul_deform_conv2d_pack,
    set_deform_conv_kernel,
    set_nms_kernel,
    set_roi_align_kernel,
    torchvision_deform_conv2d_pack,
    torchvision_nms,
    torchvision_nms_dets,
)
from orpose.teachers.mmcv_ext import compiled_mmcv

needs_compiled_mmcv = pytest.mark.skipif(
    not compiled_mmcv(),
    reason="compares torchvision's kernels with mmcv's compiled ops, which this install (mmcv-lite) does not have: "
    "`make setup MMCV=full` installs them",
)

# --- RoIAlign ------------------------------------------------------------------------------------


def random_rois(generator: torch.Generator, count: int, images: int, height: int, width: int, scale: float):
    """Boxes in image pixels (features are `scale` of that), some reaching past the border and
    some of zero or near-zero size: the cases where the kernels' clamping rules matter."""
    x1 = torch.rand(count, generator=generator) * width / scale * 1.2 - 5
    y1 = torch.rand(count, generator=generator) * height / scale * 1.2 - 5
    box_w = torch.rand(count, generator=generator) * width / scale
    box_h = torch.rand(count, generator=generator) * height / scale
    box_w[:3], box_h[3:6] = 0.0, 0.01
    batch_index = torch.randint(0, images, (count,), generator=generator).float()
    return torch.stack([batch_index, x1, y1, x1 + box_w, y1 + box_h], dim=1)


@needs_compiled_mmcv
@pytest.mark.parametrize("sampling_ratio", [0, 2])
@pytest.mark.parametrize("output_size", [7, 14])
def test_torchvision_roi_align_gives_mmcv_numbers_to_the_bit(sampling_ratio, output_size):
    generator = torch.Generator().manual_seed(sampling_ratio * 100 + output_size)
    for scale in (1.0, 0.25, 0.03125):
        features = torch.randn(2, 8, 37, 53, generator=generator)
        rois = random_rois(generator, 60, 2, 37, 53, scale)
        mmcv_layer = RoIAlign(output_size, scale, sampling_ratio, "avg", aligned=True)
        torchvision_layer = RoIAlign(output_size, scale, sampling_ratio, "avg", aligned=True, use_torchvision=True)
        expected = mmcv_layer(features, rois)
        assert expected.abs().sum() > 0
        torch.testing.assert_close(torchvision_layer(features, rois), expected, rtol=0, atol=0)


def test_roi_align_known_answer_and_no_rois():
    """A box covering exactly one feature cell of a ramp reads the ramp's value at its centre
    (aligned=True: pixel centres at +0.5); no boxes give an empty output of the right shape."""
    features = torch.arange(6.0).reshape(1, 1, 1, 6).expand(1, 1, 6, 6).contiguous()  # value = column index
    rois = torch.tensor([[0.0, 2.0, 1.0, 3.0, 2.0], [0.0, 4.0, 4.0, 6.0, 6.0]])
    for use_torchvision in (False, True):
        layer = RoIAlign(1, 1.0, 2, "avg", aligned=True, use_torchvision=use_torchvision)
        torch.testing.assert_close(layer(features, rois).flatten(), torch.tensor([2.0, 4.5]), rtol=0, atol=1e-6)
        assert layer(features, torch.zeros(0, 5)).shape == (0, 1, 1, 1)


def test_max_pooling_layers_keep_mmcv_kernel():
    """torchvision's kernel only averages: a max-pooling layer switched to it would change its output."""
    model = torch.nn.ModuleList([RoIAlign(7, 0.25, 0, "max"), RoIAlign(7, 0.25, 0, "avg")])
    assert set_roi_align_kernel(model, "torchvision") == 1
    assert not model[0].use_torchvision and model[1].use_torchvision
    assert set_roi_align_kernel(model, "mmcv") == 1 and not model[1].use_torchvision
    with pytest.raises(ValueError, match="one of 'torchvision', 'mmcv', not"):
        set_roi_align_kernel(model, "cuda")


# --- NMS ------------------------------------------------------------------------------------------


def both_kernels(boxes, scores, iou, **kwargs):
    """Indices kept by mmcv's `nms` and by the same call with torchvision's kernel."""
    _, mmcv_keep = nms(boxes, scores, iou, **kwargs)
    _, torchvision_keep = torchvision_nms_dets(boxes, scores, iou, **kwargs)
    return mmcv_keep.tolist(), torchvision_keep.tolist()


def test_nms_known_answers():
    # B overlaps A with IoU 81 / 119 = 0.68; C is apart.
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]])
    scores = torch.tensor([0.8, 0.9, 0.7])
    assert both_kernels(boxes, scores, 0.5) == ([1, 2], [1, 2])
    assert both_kernels(boxes, scores, 0.7) == ([1, 0, 2], [1, 0, 2])
    # IoU exactly 0.5 (inter 2, union 4): suppressed only when IoU > threshold, in both
    touching = torch.tensor([[0.0, 0, 3, 1], [1, 0, 4, 1]])
    assert both_kernels(touching, torch.tensor([0.9, 0.8]), 0.5) == ([0, 1], [0, 1])
    assert both_kernels(touching, torch.tensor([0.9, 0.8]), 0.49) == ([0], [0])


def test_nms_borders_and_degenerate_boxes():
    """Boxes past the image border (negative coordinates, before any clipping) and zero-area boxes
    (IoU 0/0: never suppressed, never suppressing) are treated alike by both kernels."""
    boxes = torch.tensor([[-5.0, -5, 5, 5], [-4, -4, 5, 5], [3, 3, 3, 9], [3, 3, 3, 9], [0, 0, 0, 0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    assert both_kernels(boxes, scores, 0.5) == ([0, 2, 3, 4], [0, 2, 3, 4])


def test_nms_empty_inputs_score_threshold_and_max_num():
    empty = torch.zeros(0, 4), torch.zeros(0)
    assert both_kernels(*empty, 0.5) == ([], [])
    boxes = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]])
    scores = torch.tensor([0.3, 0.9, 0.6])
    assert both_kernels(boxes, scores, 0.5, score_threshold=0.95) == ([], [])  # all filtered
    assert both_kernels(boxes, scores, 0.5, score_threshold=0.5) == ([1, 2], [1, 2])  # indices into the input
    assert both_kernels(boxes, scores, 0.5, max_num=2) == ([1, 2], [1, 2])
    assert torchvision_nms(*empty, 0.5).dtype == torch.long


@needs_compiled_mmcv
def test_nms_equal_scores_are_visited_in_mmcvs_order():
    """mmcv sorts scores with an unstable sort; torchvision's own kernel sorts stably. With many
    equal scores and overlaps, calling torchvision's kernel directly keeps a different set: the
    wrapper must not, and here it must keep exactly mmcv's boxes in mmcv's order."""
    from torchvision.ops import nms as raw_torchvision_nms

    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(2000, 2, generator=generator) * 100
    boxes = torch.cat([corners, corners + torch.rand(2000, 2, generator=generator) * 30 + 1], 1)
    scores = (torch.rand(2000, generator=generator) * 5).round() / 5  # six distinct values
    mmcv_keep, torchvision_keep = both_kernels(boxes, scores, 0.3)
    assert raw_torchvision_nms(boxes, scores, 0.3).tolist() != mmcv_keep  # the trap is real
    assert torchvision_keep == mmcv_keep


@needs_compiled_mmcv
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batched_nms_equals_mmcv_including_its_per_class_split(seed):
    """mmdet's heads call `batched_nms` (offset trick per class; per-class loop above split_thr);
    both paths with torchvision's kernel give mmcv's boxes and order."""
    generator = torch.Generator().manual_seed(seed)
    corners = torch.rand(600, 2, generator=generator) * 200 - 20  # some past the border
    boxes = torch.cat([corners, corners + torch.rand(600, 2, generator=generator) * 60], 1)
    scores = (torch.rand(600, generator=generator) * 20).round() / 20
    classes = torch.randint(0, 3, (600,), generator=generator)
    for config in (dict(type="nms", iou_threshold=0.5), dict(type="nms", iou_threshold=0.7, split_thr=100)):
        expected, expected_keep = batched_nms(boxes, scores, classes, dict(config))
        got, keep = batched_nms(boxes, scores, classes, dict(config, type=torchvision_nms_dets))
        assert keep.tolist() == expected_keep.tolist() and len(keep) > 50
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


class NMSHeads(torch.nn.Module):
    """Two heads that run NMS through mmcv's `batched_nms` with their test_cfg, as mmdet's RPN and RoI heads."""

    def __init__(self):
        from mmengine.config import ConfigDict

        super().__init__()
        self.rpn, self.roi = torch.nn.Module(), torch.nn.Module()
        self.rpn.test_cfg = ConfigDict(nms=dict(type="nms", iou_threshold=0.7), max_per_img=100)
        self.roi.test_cfg = ConfigDict(rcnn=dict(nms=dict(type="nms", iou_threshold=0.5)))

    def forward(self, boxes, scores, classes):
        first, _ = batched_nms(boxes, scores, classes, self.rpn.test_cfg.nms)
        return batched_nms(boxes, scores, classes, self.roi.test_cfg.rcnn.nms)


def test_the_nms_kernel_is_chosen_per_model_when_it_is_built():
    heads = NMSHeads()
    assert set_nms_kernel(heads, "torchvision") == 2
    assert (
        heads.rpn.test_cfg.nms.type is torchvision_nms_dets and heads.roi.test_cfg.rcnn.nms.type is torchvision_nms_dets
    )
    assert set_nms_kernel(heads, "mmcv") == 2 and heads.rpn.test_cfg.nms.type == "nms"
    with pytest.raises(ValueError, match="one of 'torchvision', 'mmcv', not"):
        set_nms_kernel(heads, "cuda")
    heads.roi.test_cfg.rcnn.nms.type = "soft_nms"
    with pytest.raises(ValueError, match="soft_nms.*detector.nms='mmcv'"):
        set_nms_kernel(heads, "torchvision")
    with pytest.raises(ValueError, match="offset"):
        torchvision_nms(torch.zeros(1, 4), torch.ones(1), 0.5, offset=1)


def test_two_models_in_two_threads_each_keep_their_own_nms_kernel(monkeypatch):
    """The local executor runs one detector per model thread. A kernel swapped around each forward (a module
    global, as before) was restored by the first thread to finish while the other was still inside: some of
    its NMS calls then ran mmcv's kernel. Chosen at build time, no call of a torchvision-kernel model ever
    reaches mmcv's NMS entry point, whatever the threads do."""
    mmcv_nms_module = sys.modules["mmcv.ops.nms"]  # the module: `mmcv.ops.nms` the attribute is the function
    entered = []
    mmcv_apply = mmcv_nms_module.NMSop.apply

    def trap(*args):
        entered.append(threading.current_thread().name)
        return mmcv_apply(*args)

    monkeypatch.setattr(mmcv_nms_module.NMSop, "apply", trap)
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(300, 2, generator=generator) * 100
    boxes = torch.cat([corners, corners + 20], 1)
    scores, classes = torch.rand(300, generator=generator), torch.zeros(300, dtype=torch.long)
    models = {"torchvision": NMSHeads(), "mmcv": NMSHeads()}
    for kernel, model in models.items():
        set_nms_kernel(model, kernel)
    start = threading.Barrier(2)

    def work(kernel):
        start.wait()
        for _ in range(200):
            models[kernel](boxes, scores, classes)

    threads = [threading.Thread(target=work, args=(k,), name=k) for k in models]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert entered.count("mmcv") == 400  # the mmcv model: both heads, every call
    assert entered.count("torchvision") == 0


# --- deformable convolution v1 ---------------------------------------------------------------------


def both_deform(x, offset, weight, stride=1, padding=1, dilation=1, groups=1, deform_groups=1):
    mmcv = mmcv_deform_conv2d(x, offset, weight, stride, padding, dilation, groups, deform_groups, False, 64)
    torchvision = torchvision_deform_conv2d(x, offset, weight, None, stride, padding, dilation)
    return mmcv, torchvision


def matmul_deform(x, offset, weight, stride=1, padding=1, dilation=1):
    pair = lambda v: (v, v)  # noqa: E731
    return deform_conv2d_matmul(x, offset, weight, pair(stride), pair(padding), pair(dilation))


def test_deform_conv_known_answers_at_the_border():
    """Offsets are (dy, dx) per kernel tap. Zero offsets: a plain (zero-padded) convolution. Every
    tap moved by dx = +1: the left padding column is never read, and past the right border reads
    zero. dx = +0.5: bilinear, so the mean of those two."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 6, 7, generator=generator)
    weight = torch.randn(4, 3, 3, 3, generator=generator)
    plain = F.conv2d(x, weight, padding=1)
    zero = torch.zeros(1, 18, 6, 7)
    shift_right = zero.clone()
    shift_right[:, 1::2] = 1.0  # dx of every tap
    # tap kx of output column j reads column j - 1 + kx + 1: column -1 is never read, column 7 is
    # past the right border and reads zero
    shifted = F.conv2d(F.pad(x, (0, 2, 1, 1)), weight)
    for name, offset, expected in (
        ("zero", zero, plain),
        ("dx=1", shift_right, shifted),
        ("dx=0.5", shift_right * 0.5, (plain + shifted) / 2),
    ):
        for kernel_output in (*both_deform(x, offset, weight), matmul_deform(x, offset, weight)):
            torch.testing.assert_close(kernel_output, expected, rtol=1e-5, atol=1e-5, msg=name)


SHAPES = [(1, 1, 1, 1, 1), (2, 2, 2, 1, 1), (1, 1, 1, 2, 2), (32, 1, 2, 1, 1)]


def deform_inputs(groups, deform_groups, stride, padding, dilation):
    """Seeded input, offsets of several pixels (samples past every border) and weights for one of SHAPES."""
    generator = torch.Generator().manual_seed(groups * 10 + deform_groups)
    x = torch.randn(2, 64, 13, 17, generator=generator)
    weight = torch.randn(64, 64 // groups, 3, 3, generator=generator)
    out_h = (13 + 2 * padding - dilation * 2 - 1) // stride + 1
    out_w = (17 + 2 * padding - dilation * 2 - 1) // stride + 1
    offset = torch.randn(2, 2 * deform_groups * 9, out_h, out_w, generator=generator) * 3.0
    return x, offset, weight


@needs_compiled_mmcv
@pytest.mark.parametrize("groups, deform_groups, stride, padding, dilation", SHAPES)
def test_torchvision_deform_conv_gives_mmcv_numbers_to_the_bit(groups, deform_groups, stride, padding, dilation):
    """Offsets of several pixels (samples land past every border); grouped convolution (X-152's
    32 groups), offset groups, stride and dilation."""
    x, offset, weight = deform_inputs(groups, deform_groups, stride, padding, dilation)
    mmcv, torchvision = both_deform(x, offset, weight, stride, padding, dilation, groups, deform_groups)
    assert mmcv.abs().max() > 1
    torch.testing.assert_close(torchvision, mmcv, rtol=0, atol=0)


@pytest.mark.parametrize("groups, deform_groups, stride, padding, dilation", SHAPES)
def test_the_matmul_deform_conv_gives_torchvisions_numbers(groups, deform_groups, stride, padding, dilation):
    """The plain-torch deformable convolution (bilinear sampling, one matrix product over the groups) against
    torchvision's kernel: offsets of several pixels (samples past every border), 32 groups, offset groups,
    stride, dilation; fp32 sums in another order, so to 1e-4 of values of order 10."""
    x, offset, weight = deform_inputs(groups, deform_groups, stride, padding, dilation)
    expected = torchvision_deform_conv2d(x, offset, weight, None, stride, padding, dilation)
    got = matmul_deform(x, offset, weight, stride, padding, dilation)
    assert expected.abs().max() > 1
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_the_matmul_deform_conv_runs_its_product_in_bf16_under_autocast():
    """What the lever is for: under autocast its matrix product runs in bf16 (torchvision's kernel casts to
    fp32); the result stays within bf16's rounding of the fp32 answer."""
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(1, 64, 12, 12, generator=generator)
    weight = torch.randn(64, 2, 3, 3, generator=generator) * 0.1
    offset = torch.randn(1, 18, 12, 12, generator=generator)
    expected = matmul_deform(x, offset, weight)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = matmul_deform(x, offset, weight)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected, rtol=0.05, atol=0.05)


@needs_compiled_mmcv
def test_deform_conv_empty_batch():
    """mmcv's kernel refuses a batch of 0 images; torchvision's gives an empty output (the detector
    never sends one: every forward has at least one view)."""
    x, offset, weight = torch.zeros(0, 4, 5, 5), torch.zeros(0, 18, 5, 5), torch.randn(4, 4, 3, 3)
    assert torchvision_deform_conv2d(x, offset, weight, None, 1, 1, 1).shape == (0, 4, 5, 5)
    with pytest.raises(ValueError):
        mmcv_deform_conv2d(x, offset, weight, 1, 1, 1, 1, 1, False, 64)


def seeded_dcn_backbone():
    """mmdet's ResNet-50 with deformable convolution in stages 2-4 (as the paper's X-152), seeded;
    its offset convolutions (zero at initialisation) get weights that move samples by pixels."""
    from mmdet.models.backbones import ResNet

    torch.manual_seed(0)
    backbone = ResNet(
        depth=50,
        dcn=dict(type="DCN", deform_groups=1, fallback_on_stride=False),
        stage_with_dcn=(False, True, True, True),
        norm_cfg=dict(type="BN", requires_grad=False),
    )
    backbone.eval()  # (mmdet's ResNet.train returns None: no chaining)
    for module in backbone.modules():
        if isinstance(module, DeformConv2dPack):
            torch.nn.init.normal_(module.conv_offset.weight, std=0.05)
    return backbone


def test_switching_a_dcn_backbone_keeps_its_outputs_and_state():
    backbone = seeded_dcn_backbone()
    keys = list(backbone.state_dict())
    image = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = backbone(image)
        assert set_deform_conv_kernel(backbone, "torchvision") == 4 + 6 + 3  # R-50's blocks in stages 2-4
        layers = [m for m in backbone.modules() if isinstance(m, DeformConv2dPack)]
        assert all(type(m) is torchvision_deform_conv2d_pack() for m in layers)
        got = backbone(image)
    assert list(backbone.state_dict()) == keys
    for level_expected, level_got in zip(expected, got):
        torch.testing.assert_close(level_got, level_expected, rtol=0, atol=0)
    assert set_deform_conv_kernel(backbone, "matmul") == 13
    assert all(type(m) is matmul_deform_conv2d_pack() for m in layers)
    with torch.no_grad():
        for level_expected, level_got in zip(expected, backbone(image)):
            torch.testing.assert_close(level_got, level_expected, rtol=1e-4, atol=1e-4)
    assert list(backbone.state_dict()) == keys
    assert set_deform_conv_kernel(backbone, "mmcv") == 13
    assert all(type(m) is DeformConv2dPack for m in layers)


def test_a_dcn_backbone_runs_under_bf16_autocast_on_either_kernel():
    """torchvision's CPU deformable convolution has no bf16 kernel: under autocast the layer computes in fp32
    (as torchvision's CUDA autocast rule does) and hands bf16 on; the matmul kernel computes in bf16. Both stay
    near the fp32 outputs (the paper teacher in bf16 on a CPU failed before)."""
    backbone = seeded_dcn_backbone()
    image = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = backbone(image)
        for kernel in ("torchvision", "matmul"):
            set_deform_conv_kernel(backbone, kernel)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                got = backbone(image)
            for level_expected, level_got in zip(expected, got):
                scale = level_expected.abs().max()
                assert (level_got.float() - level_expected).abs().max() < 0.1 * scale, kernel


def test_modulated_deform_conv_has_no_torchvision_switch():
    model = torch.nn.Sequential(ModulatedDeformConv2dPack(4, 4, 3, padding=1))
    with pytest.raises(ValueError, match=r"layer '0' is ModulatedDeformConv2dPack.*detector.deform_conv='mmcv'"):
        set_deform_conv_kernel(model, "torchvision")
    assert set_deform_conv_kernel(model, "mmcv") == 0
