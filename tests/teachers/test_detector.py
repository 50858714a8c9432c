"""The detector: its kernel choices (`detector.roi_align`, `detector.nms`, `detector.deform_conv`)
cannot change a label, torchvision's kernels keep it out of mmcv's compiled extension, and batched
views give the detections of single views. The kernels themselves: test_kernels.py."""

import dataclasses
import importlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from mmcv.ops import RoIAlign

from orpose.configs.schema import CONFIG_DIR, load_teacher_config
from orpose.teachers.detector import PersonDetector
from orpose.teachers.mm import pick_device
from orpose.teachers.weights import checkpoint_path

SAMPLE = Path(__file__).parents[2] / "data" / "sample"


def tiny_detector(**spec_changes) -> PersonDetector:
    config = load_teacher_config("tiny", {"device": "cpu"})
    spec = dataclasses.replace(config.detector, **spec_changes)
    checkpoint = checkpoint_path(config.weights_dir, spec.checkpoint)
    return PersonDetector(spec, checkpoint, pick_device("cpu"), config.thresholds.box_score, CONFIG_DIR)


MMCV_KERNELS = dict(roi_align="mmcv", nms="mmcv", deform_conv="mmcv")


def test_the_trained_detector_gives_the_same_detections_with_either_kernel():
    """Every RoI layer of the cascade (three box stages and the mask head) and every NMS (the RPN's
    and each stage's) is switched, and the trained tiny detector's boxes, scores and masks on a
    sample frame stay exactly as they were."""
    image = cv2.imread(str(SAMPLE / "day1/cam1/color/000001.png"))
    stock = tiny_detector(**MMCV_KERNELS)
    layers = [m for m in stock.model.modules() if isinstance(m, RoIAlign)]
    assert len(layers) >= 4 * 4 and not any(m.use_torchvision for m in layers)  # 4 FPN levels x (3 box stages + masks)
    expected = stock([image])[0]
    fast = tiny_detector()  # the defaults: torchvision
    assert all(m.use_torchvision for m in fast.model.modules() if isinstance(m, RoIAlign))
    got = fast([image])[0]
    assert len(expected) >= 1
    np.testing.assert_array_equal(got.boxes, expected.boxes)
    np.testing.assert_array_equal(got.scores, expected.scores)
    np.testing.assert_array_equal(got.masks, expected.masks)


def test_torchvision_kernels_keep_the_detector_out_of_mmcvs_compiled_ops(monkeypatch):
    """What lets a GPU node run the teacher with mmcv's CPU ops only: with the default kernels, a
    detection never calls a function of mmcv's compiled extension (every one of them is replaced by
    a trap here). The same trap catches the mmcv kernels, so it is not blind."""
    import mmcv

    ext = importlib.import_module("mmcv._ext")
    called = []

    def trap(name):
        def compiled_op(*args, **kwargs):
            called.append(name)
            raise RuntimeError(f"mmcv compiled op {name} called")

        return compiled_op

    image = cv2.imread(str(SAMPLE / "day1/cam1/color/000001.png"))
    detectors = {"torchvision": tiny_detector(), "mmcv": tiny_detector(**MMCV_KERNELS)}
    assert mmcv.__version__ == "2.1.0"
    for name in [n for n in dir(ext) if not n.startswith("_")]:
        monkeypatch.setattr(ext, name, trap(name))
    assert len(detectors["torchvision"]([image])[0]) >= 1
    assert called == []
    with pytest.raises(RuntimeError, match="mmcv compiled op"):
        detectors["mmcv"]([image])
    assert called


def test_views_batched_into_one_forward_give_the_detections_of_single_views():
    """`views_per_forward > 1` (the paper config uses 2) puts several TTA views of several frames
    into one network call, padded to one size: the merged detections must be those of one view at
    a time. Two scales make views of different sizes, so the padding is exercised too."""
    config = load_teacher_config("tiny", {"device": "cpu"})
    images = [cv2.imread(str(SAMPLE / f"day1/cam{c}/color/000001.png")) for c in (1, 2)]

    def detector(views_per_forward):
        spec = dataclasses.replace(config.detector, scales=(400, 480), flip=True, views_per_forward=views_per_forward)
        return PersonDetector(
            spec,
            checkpoint_path(config.weights_dir, spec.checkpoint),
            pick_device("cpu"),
            config.thresholds.box_score,
            CONFIG_DIR,
        )

    single, batched = detector(1), detector(3)
    expected, got = single(images), batched(images)
    assert single.forward_passes == 8 and batched.forward_passes == 3  # 2 frames x 2 scales x 2 (flip)
    for e, g in zip(expected, got):
        assert len(e) >= 1 and len(g) == len(e)
        np.testing.assert_allclose(g.boxes, e.boxes, atol=0.5)
        np.testing.assert_allclose(g.scores, e.scores, atol=1e-3)
        assert (g.masks != e.masks).mean() < 1e-3


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def test_masks_of_the_merged_boxes_hold_one_view_per_frame_and_give_the_members_masks():
    """`detector.masks: merged`: the same boxes and scores (masks do not move boxes), each mask from one view per
    frame at the merged box, close to the best member's own mask; and the features held at once are bounded by
    one chunk plus one view per frame, where `member` holds every view of every frame until the merge."""
    images = [cv2.imread(str(SAMPLE / f"day1/cam{c}/color/00000{i}.png")) for c in (1, 2) for i in (1, 2)]
    settings = dict(scales=(480, 400), flip=True, views_per_forward=2)  # 4 views a frame, 16 in all
    member, merged = tiny_detector(**settings), tiny_detector(**settings, masks="merged")
    expected, got = member(images), merged(images)
    assert sum(len(d) for d in expected) >= 4
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(g.boxes, e.boxes)
        np.testing.assert_array_equal(g.scores, e.scores)
        assert g.masks.shape == e.masks.shape
        ious = [_mask_iou(a, b) for a, b in zip(g.masks, e.masks)]
        assert np.median(ious) >= 0.8 and min(ious) >= 0.3, ious  # the tiny teacher's masks: 8 frames, median 0.87
    assert member.views_held_peak == 16
    assert merged.views_held_peak <= 2 + len(images)
