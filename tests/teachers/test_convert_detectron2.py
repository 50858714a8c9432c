"""detectron2 -> mmdet conversion of the paper's X-152 cascade, without detectron2 installed.

tests/fixtures/detectron2/x152_state_dict_shapes.json lists the names and shapes of the state dict
that detectron2 (commit 02b5c4e2) builds from its model zoo config
Misc/cascade_mask_rcnn_X_152_32x8d_FPN_IN5k_gn_dconv.yaml: every one of them must find its place
in the mmdet model. The numerical equality with detectron2 is tests/teachers/test_detectron2_equivalence.py.
"""

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from orpose.configs.schema import CONFIG_DIR
from orpose.teachers.convert_detectron2 import (
    DETECTRON2_X152_CONFIG,
    ConversionError,
    convert_state,
    read_detectron2_pickle,
    rename,
)
from orpose.teachers.mm import build_mm_model, load_checkpoint_strict, load_mm_config
from orpose.teachers.mmdet_detectron2 import Detectron2DeltaXYWHBBoxCoder, apply_deltas

ROOT = Path(__file__).parents[2]
SHAPES = json.loads((ROOT / "tests/fixtures/detectron2/x152_state_dict_shapes.json").read_text())


@pytest.mark.parametrize(
    "detectron2_name, mmdet_name",
    [
        ("backbone.bottom_up.stem.conv1.weight", "backbone.conv1.weight"),
        ("backbone.bottom_up.stem.conv1.norm.running_var", "backbone.bn1.running_var"),
        ("backbone.bottom_up.res2.0.shortcut.norm.bias", "backbone.layer1.0.downsample.1.bias"),
        ("backbone.bottom_up.res4.35.conv3.norm.running_mean", "backbone.layer3.35.bn3.running_mean"),
        ("backbone.bottom_up.res5.2.conv2_offset.bias", "backbone.layer4.2.conv2.conv_offset.bias"),
        ("backbone.bottom_up.res3.7.conv2.weight", "backbone.layer2.7.conv2.weight"),
        ("backbone.fpn_lateral2.weight", "neck.lateral_convs.0.conv.weight"),
        ("backbone.fpn_output5.bias", "neck.fpn_convs.3.conv.bias"),
        ("proposal_generator.rpn_head.anchor_deltas.weight", "rpn_head.rpn_reg.weight"),
        ("roi_heads.box_head.2.conv4.norm.weight", "roi_head.bbox_head.2.shared_convs.3.gn.weight"),
        ("roi_heads.box_head.1.fc1.bias", "roi_head.bbox_head.1.shared_fcs.0.bias"),
        ("roi_heads.box_predictor.0.cls_score.weight", "roi_head.bbox_head.0.fc_cls.weight"),
        ("roi_heads.mask_head.mask_fcn8.norm.bias", "roi_head.mask_head.0.convs.7.gn.bias"),
        ("roi_heads.mask_head.deconv.weight", "roi_head.mask_head.0.upsample.weight"),
        ("roi_heads.mask_head.predictor.bias", "roi_head.mask_head.0.conv_logits.bias"),
    ],
)
def test_rename_known_answers(detectron2_name, mmdet_name):
    assert rename(detectron2_name) == mmdet_name


def test_rename_leaves_unknown_names_unmapped():
    assert rename("roi_heads.keypoint_head.conv_fcn1.weight") is None
    assert rename("backbone.bottom_up.res2.0.conv1.weightx") is None  # whole-name match only


@pytest.fixture(scope="module")
def x152():
    return build_mm_model("mmdet", load_mm_config(DETECTRON2_X152_CONFIG, None, CONFIG_DIR)).eval()


def seeded_arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in SHAPES["shapes"].items()}


def test_every_detectron2_array_has_its_place_and_the_model_is_covered(x152):
    arrays = seeded_arrays()
    state = convert_state(arrays, x152)
    assert set(state) == set(x152.state_dict())
    for name, array in arrays.items():  # values move unchanged
        np.testing.assert_array_equal(state[rename(name)].numpy(), array)
    # detectron2's FrozenBN keeps the affine as buffers: its parameter count is mmdet's without them.
    frozen = sum(p.numel() for m in x152.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters())
    assert sum(p.numel() for p in x152.parameters()) - frozen == SHAPES["parameters"] == 182_487_660


def test_a_file_that_does_not_fit_is_refused_naming_the_keys(x152):
    extra = dict(seeded_arrays(), **{"roi_heads.keypoint_head.conv_fcn1.weight": np.zeros((3, 3), np.float32)})
    with pytest.raises(
        ConversionError, match=r"keys without a place in it: roi_heads\.keypoint_head\.conv_fcn1\.weight"
    ):
        convert_state(extra, x152, source="x.pkl")
    wrong = seeded_arrays()
    wrong["roi_heads.box_predictor.0.cls_score.weight"] = np.zeros((2, 1024), np.float32)  # a 1-class model
    with pytest.raises(ConversionError, match=r"shape mismatches: roi_heads\.box_predictor\.0\.cls_score\.weight"):
        convert_state(wrong, x152)
    short = seeded_arrays()
    del short["backbone.bottom_up.res3.0.conv2_offset.weight"]  # a model without deformable convolutions
    with pytest.raises(ConversionError, match=r"does not provide: backbone\.layer2\.0\.conv2\.conv_offset\.weight"):
        convert_state(short, x152)


def test_pixel_statistics_are_checked_not_copied(x152):
    arrays = dict(
        seeded_arrays(),
        pixel_mean=np.array([103.53, 116.28, 123.675], np.float32).reshape(3, 1, 1),
        pixel_std=np.ones((3, 1, 1), np.float32),
    )
    assert set(convert_state(arrays, x152)) == set(x152.state_dict())
    arrays["pixel_mean"] = np.array([123.675, 116.28, 103.53], np.float32)  # an RGB model
    with pytest.raises(ConversionError, match="pixel_mean"):
        convert_state(arrays, x152)


def test_unreadable_files_are_named(tmp_path):
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(ConversionError, match="bad.pkl: not a detectron2 checkpoint"):
        read_detectron2_pickle(bad)
    caffe2 = tmp_path / "caffe2.pkl"
    caffe2.write_bytes(pickle.dumps({"blobs": {}}))
    with pytest.raises(ConversionError, match="Caffe2"):
        read_detectron2_pickle(caffe2)
    with pytest.raises(FileNotFoundError, match="missing.pkl"):
        read_detectron2_pickle(tmp_path / "missing.pkl")


@pytest.mark.slow
def test_convert_command_writes_a_strictly_loading_file_with_its_source_digest(tmp_path, x152):
    source, target = tmp_path / "model_seeded.pkl", tmp_path / "x152.pth"
    with open(source, "wb") as file:
        pickle.dump({"model": seeded_arrays(1), "__author__": "test"}, file)
    result = subprocess.run(
        [sys.executable, "-m", "orpose.pipeline.cli", "convert-detectron2", str(source), str(target)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    from orpose.frames.files import sha256_file

    meta = torch.load(target, map_location="cpu", weights_only=False)["meta"]
    assert meta["source_sha256"] == sha256_file(source) and meta["source"] == "model_seeded.pkl"
    assert load_checkpoint_strict(x152, target) in result.stdout
    broken = tmp_path / "broken.pkl"
    with open(broken, "wb") as file:
        pickle.dump({"model": {"roi_heads.keypoint_head.x.weight": np.zeros(3)}}, file)
    result = subprocess.run(
        [sys.executable, "-m", "orpose.pipeline.cli", "convert-detectron2", str(broken), str(tmp_path / "b.pth")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert result.returncode == 1 and "broken.pkl does not convert" in result.stderr
    assert not (tmp_path / "b.pth").exists() and not list(tmp_path.glob("*.partial"))


def test_apply_deltas_known_answers():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 20.0]])
    weights = (10.0, 10.0, 5.0, 5.0)
    same = apply_deltas(boxes, torch.zeros(1, 4), weights)
    torch.testing.assert_close(same, boxes)
    shifted = apply_deltas(boxes, torch.tensor([[1.0, 2.0, 0.0, 0.0]]), weights)  # dx = 0.1 of the width
    torch.testing.assert_close(shifted, torch.tensor([[1.0, 4.0, 11.0, 24.0]]))
    doubled = apply_deltas(boxes, torch.tensor([[0.0, 0.0, 5 * np.log(2.0), 0.0]]), weights)
    torch.testing.assert_close(doubled, torch.tensor([[-5.0, 0.0, 15.0, 20.0]]))
    # Clamped from above only (log(1000/16)), as detectron2: a huge shrink is not limited.
    grown = apply_deltas(boxes, torch.tensor([[0.0, 0.0, 100.0, 0.0]]), weights)
    torch.testing.assert_close(grown[0, 2] - grown[0, 0], torch.tensor(10.0 * 1000 / 16))
    centred = torch.tensor([[-5.0, -10.0, 5.0, 10.0]])  # a centre at 0 keeps a 2e-7 px width representable
    shrunk = apply_deltas(centred, torch.tensor([[0.0, 0.0, -100.0, 0.0]]), weights)
    torch.testing.assert_close(
        shrunk[0, 2] - shrunk[0, 0], torch.tensor(float(10.0 * np.exp(-20.0))), rtol=1e-4, atol=0
    )
    clipped = apply_deltas(boxes, torch.tensor([[5.0, 0.0, 0.0, 0.0]]), weights, max_shape=(15, 12))
    torch.testing.assert_close(clipped, torch.tensor([[5.0, 0.0, 12.0, 15.0]]))


def test_coder_decodes_as_mmdet_inside_the_clamp_and_as_detectron2_outside():
    from mmdet.models.task_modules.coders import DeltaXYWHBBoxCoder

    stds = [0.1, 0.1, 0.2, 0.2]
    ours, theirs = Detectron2DeltaXYWHBBoxCoder(target_stds=stds), DeltaXYWHBBoxCoder(target_stds=stds)
    generator = torch.Generator().manual_seed(0)
    boxes = torch.rand(50, 2, generator=generator) * 100
    boxes = torch.cat([boxes, boxes + 5 + torch.rand(50, 2, generator=generator) * 50], dim=1)
    deltas = torch.randn(50, 4, generator=generator)
    torch.testing.assert_close(
        ours.decode(boxes, deltas, max_shape=(120, 160)), theirs.decode(boxes, deltas, max_shape=(120, 160))
    )
    deltas[:, 2] = -40.0  # dw = -8 < -log(1000/16): mmdet clamps it, detectron2 does not
    widths = ours.decode(boxes, deltas)[:, 2] - ours.decode(boxes, deltas)[:, 0]
    torch.testing.assert_close(widths, (boxes[:, 2] - boxes[:, 0]) * float(np.exp(-8.0)))
    assert torch.all(theirs.decode(boxes, deltas)[:, 2] - theirs.decode(boxes, deltas)[:, 0] > widths * 2)


def test_cascade_head_averages_stage_probabilities_and_has_one_mask_head():
    """The tiny cascade with detectron2's RoI head: final scores = mean of the stages' softmaxes
    (mmdet's own head would give softmax of the mean logits); masks from the one head."""
    from mmdet.structures import DetDataSample
    from mmdet.structures.bbox import bbox2roi

    torch.manual_seed(0)
    cfg = load_mm_config(
        "teachers/mm/tiny_cascade-mask-rcnn_r18-w16_fpn.py",
        {
            "model.roi_head.type": "Detectron2CascadeRoIHead",
            "custom_imports": dict(imports=["orpose.teachers.mmdet_detectron2"], allow_failed_imports=False),
        },
        CONFIG_DIR,
    )
    model = build_mm_model("mmdet", cfg).eval()
    model.init_weights()
    head = model.roi_head
    assert len(head.mask_head) == 1
    features = tuple(torch.randn(1, 32, 64 // 2**i, 80 // 2**i) for i in range(5))
    boxes = torch.tensor([[10.0, 10.0, 100.0, 200.0], [50.0, 40.0, 300.0, 250.0], [0.0, 0.0, 40.0, 40.0]])
    meta = dict(img_shape=(256, 320), ori_shape=(256, 320), scale_factor=(1.0, 1.0))
    with torch.no_grad():
        rois, log_mean, _ = head._refine_roi(features, bbox2roi([boxes]), [meta], [3])
        expected, stage_rois = 0, bbox2roi([boxes])
        for stage in range(3):
            result = head._bbox_forward(stage, features, stage_rois)
            expected = expected + torch.softmax(result["cls_score"], dim=-1) / 3
            refined = head.bbox_head[stage].regress_by_class(stage_rois[:, 1:], None, result["bbox_pred"], meta)
            stage_rois = torch.cat([stage_rois[:, :1], refined], dim=1)
        torch.testing.assert_close(torch.softmax(log_mean[0], dim=-1), expected)
        sample = DetDataSample(metainfo=meta)
        proposals = [__import__("mmengine").structures.InstanceData(bboxes=boxes, scores=torch.ones(3))]
        detections = head.predict(features, proposals, [sample], rescale=False)[0]
    assert detections.masks.shape[1:] == (256, 320)
    with pytest.raises(NotImplementedError, match="inference only"):
        head.loss(features, proposals, [sample])
