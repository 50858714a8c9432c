"""The detector's kernels on CUDA (torchvision's, which ship compiled in its wheel) against mmcv's
ops on CPU (compiled mmcv's, or with mmcv-lite the project's stand-in, teachers/mmcv_ext.py): what lets a
GPU node run the teacher without compiling anything. They run where
torch sees a GPU (tools/gpu_check.sh runs them on the measuring machine) and skip elsewhere.
Float sums run in another order on a GPU, so values are compared with tolerances, kept indices
exactly."""

import pytest
import torch

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device (tools/gpu_check.sh runs these on a GPU machine)"
)


def test_nms_on_cuda_keeps_mmcvs_boxes():
    from mmcv.ops import batched_nms

    from orpose.teachers.kernels import torchvision_nms_dets

    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(3000, 2, generator=generator) * 400 - 20
    boxes = torch.cat([corners, corners + torch.rand(3000, 2, generator=generator) * 80 + 1], 1)
    scores = torch.rand(3000, generator=generator)  # distinct: CUDA's sort orders ties its own way, as mmcv's CUDA op
    classes = torch.randint(0, 3, (3000,), generator=generator)
    config = dict(type="nms", iou_threshold=0.5)
    expected, expected_keep = batched_nms(boxes, scores, classes, dict(config))
    got, keep = batched_nms(boxes.cuda(), scores.cuda(), classes.cuda(), dict(config, type=torchvision_nms_dets))
    assert keep.device.type == "cuda" and keep.cpu().tolist() == expected_keep.tolist()
    torch.testing.assert_close(got.cpu(), expected)


def test_deform_conv_on_cuda_matches_mmcv_on_cpu():
    from mmcv.ops import deform_conv2d as mmcv_deform_conv2d
    from torchvision.ops import deform_conv2d

    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 64, 23, 31, generator=generator)
    weight = torch.randn(64, 2, 3, 3, generator=generator) / 4  # 32 groups, as the X-152's
    offset = torch.randn(2, 18, 12, 16, generator=generator) * 3.0
    expected = mmcv_deform_conv2d(x, offset, weight, 2, 1, 1, 32, 1, False, 64)
    got = deform_conv2d(x.cuda(), offset.cuda(), weight.cuda(), None, 2, 1, 1)
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-4, atol=1e-4)


def test_roi_align_on_cuda_matches_mmcv_on_cpu():
    from mmcv.ops import RoIAlign

    generator = torch.Generator().manual_seed(2)
    features = torch.randn(2, 16, 50, 60, generator=generator)
    corners = torch.rand(40, 2, generator=generator) * 220 - 10
    rois = torch.cat(
        [torch.randint(0, 2, (40, 1), generator=generator).float(), corners, corners + 5 + 60 * torch.rand(40, 2)], 1
    )
    expected = RoIAlign(7, 0.25, 0, "avg", aligned=True)(features, rois)
    got = RoIAlign(7, 0.25, 0, "avg", aligned=True, use_torchvision=True)(features.cuda(), rois.cuda())
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-4, atol=1e-5)


def test_the_tiny_detector_on_cuda_finds_the_cpu_detections():
    """The trained tiny detector, all kernels torchvision, on a sample frame: same persons, boxes
    within a pixel, scores within 1e-3 (the pipeline-level comparison is gpu_check.sh's `labels diff`)."""
    from pathlib import Path

    import cv2
    import numpy as np

    from orpose.configs.schema import CONFIG_DIR, load_teacher_config
    from orpose.teachers.detector import PersonDetector
    from orpose.teachers.weights import checkpoint_path

    config = load_teacher_config("tiny")
    image = cv2.imread(str(Path(__file__).parents[2] / "data/sample/day1/cam1/color/000001.png"))
    checkpoint = checkpoint_path(config.weights_dir, config.detector.checkpoint)
    cpu, cuda = (
        PersonDetector(config.detector, checkpoint, torch.device(d), config.thresholds.box_score, CONFIG_DIR)
        for d in ("cpu", "cuda")
    )
    expected, got = cpu([image])[0], cuda([image])[0]
    assert len(expected) >= 1 and len(got) == len(expected)
    np.testing.assert_allclose(got.boxes, expected.boxes, atol=1.0)
    np.testing.assert_allclose(got.scores, expected.scores, atol=1e-3)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_the_sample_labelled_on_cuda_is_within_its_precisions_tolerances_of_cpu_fp32(precision, tmp_path):
    """The trained tiny teacher through the whole pipeline: the bundled sample in fp32 on CPU against the same on
    CUDA in fp32 (TF32 convolutions) and in bf16, held to the tolerances measured for that device and precision
    (`label_store.compare.tolerances_for`; docs/benchmarks.md, "Each lever against fp32")."""
    from pathlib import Path

    from orpose.configs.schema import load_teacher_config
    from orpose.frames.sources import open_source
    from orpose.label_store.compare import compare, tolerances_for
    from orpose.pipeline.run import run_labels

    frames = Path(__file__).parents[2] / "data/sample/manifest.jsonl"
    runs = {}
    for device, chosen in (("cpu", "fp32"), ("cuda", precision)):
        config = load_teacher_config("tiny", {"device": device, "precision": chosen})
        runs[device] = tmp_path / device
        run_labels(config, open_source(frames), str(frames), runs[device], progress=False, executor="local")
    result = compare(runs["cpu"], runs["cuda"], tolerances_for("cuda", precision))
    assert result.matched >= 10 and result.ok, "\n".join(result.lines())
