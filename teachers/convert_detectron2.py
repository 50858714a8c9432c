"""detectron2 checkpoint -> mmdet state dict, by an explicit name mapping.

detectron2's model zoo files (`model_*.pkl`) are pickles of `{"model": {name: numpy array}, ...}`
written by its Checkpointer. `convert_detectron2` renames every array with the rules in
`RULES` (never by matching shapes), builds the mmdet model from its config, checks that the
result fits it exactly (0 missing, 0 unexpected keys, 0 shape mismatches), writes
`{"state_dict", "meta"}` with the source file's sha256, and loads the written file back strictly.

The rules cover detectron2's GeneralizedRCNN with a ResNet/ResNeXt FPN backbone (deformable or
not), StandardRPNHead, CascadeROIHeads with FastRCNNConvFCHead box heads and a
MaskRCNNConvUpsampleHead: the architecture of
configs/teachers/mm/cascade-mask-rcnn_x152-32x8d-dconv-gn_fpn_in5k_detectron2.py.

    detectron2                                         mmdet
    backbone.bottom_up.stem.conv1[.norm]               backbone.conv1 / backbone.bn1
    backbone.bottom_up.res{S}.{B}.conv{I}[.norm]       backbone.layer{S-1}.{B}.conv{I} / .bn{I}
    backbone.bottom_up.res{S}.{B}.conv2_offset         backbone.layer{S-1}.{B}.conv2.conv_offset
    backbone.bottom_up.res{S}.{B}.shortcut[.norm]      backbone.layer{S-1}.{B}.downsample.0 / .1
    backbone.fpn_lateral{L} / fpn_output{L}            neck.lateral_convs.{L-2}.conv / neck.fpn_convs.{L-2}.conv
    proposal_generator.rpn_head.conv / objectness_logits / anchor_deltas
                                                       rpn_head.rpn_conv / rpn_cls / rpn_reg
    roi_heads.box_head.{K}.conv{I}[.norm]              roi_head.bbox_head.{K}.shared_convs.{I-1}.conv / .gn
    roi_heads.box_head.{K}.fc{I}                       roi_head.bbox_head.{K}.shared_fcs.{I-1}
    roi_heads.box_predictor.{K}.cls_score / bbox_pred  roi_head.bbox_head.{K}.fc_cls / fc_reg
    roi_heads.mask_head.mask_fcn{I}[.norm]             roi_head.mask_head.0.convs.{I-1}.conv / .gn
    roi_heads.mask_head.deconv / predictor             roi_head.mask_head.0.upsample / conv_logits

Both frameworks order the 80 COCO classes alike and put background last; FrozenBN's four
arrays are BatchNorm's (mmdet runs it in eval mode); `pixel_mean` / `pixel_std` (in older files)
are checked against the mmdet config's data preprocessor instead of being copied.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import torch

from orpose.errors import OrPoseError
from orpose.frames.files import sha256_file

__all__ = [
    "RULES",
    "ConversionError",
    "rename",
    "convert_state",
    "convert_detectron2",
    "read_detectron2_pickle",
    "DETECTRON2_X152_CONFIG",
    "seeded_detectron2_arrays",
    "write_detectron2_pickle",
]

DETECTRON2_X152_CONFIG = "teachers/mm/cascade-mask-rcnn_x152-32x8d-dconv-gn_fpn_in5k_detectron2.py"

_NORM = r"(weight|bias|running_mean|running_var)"
_PARAM = r"(weight|bias)"


def _minus(offset: int):
    return lambda number: str(int(number) - offset)


# (detectron2 pattern, mmdet template, group transforms). Templates use {1}, {2}, ... for groups.
RULES: list[tuple[str, str, dict[int, object]]] = [
    (r"backbone\.bottom_up\.stem\.conv1\.weight", "backbone.conv1.weight", {}),
    (rf"backbone\.bottom_up\.stem\.conv1\.norm\.{_NORM}", "backbone.bn1.{1}", {}),
    (
        rf"backbone\.bottom_up\.res(\d)\.(\d+)\.conv2_offset\.{_PARAM}",
        "backbone.layer{1}.{2}.conv2.conv_offset.{3}",
        {1: _minus(1)},
    ),
    (r"backbone\.bottom_up\.res(\d)\.(\d+)\.conv(\d)\.weight", "backbone.layer{1}.{2}.conv{3}.weight", {1: _minus(1)}),
    (
        rf"backbone\.bottom_up\.res(\d)\.(\d+)\.conv(\d)\.norm\.{_NORM}",
        "backbone.layer{1}.{2}.bn{3}.{4}",
        {1: _minus(1)},
    ),
    (
        r"backbone\.bottom_up\.res(\d)\.(\d+)\.shortcut\.weight",
        "backbone.layer{1}.{2}.downsample.0.weight",
        {1: _minus(1)},
    ),
    (
        rf"backbone\.bottom_up\.res(\d)\.(\d+)\.shortcut\.norm\.{_NORM}",
        "backbone.layer{1}.{2}.downsample.1.{3}",
        {1: _minus(1)},
    ),
    (rf"backbone\.fpn_lateral(\d)\.{_PARAM}", "neck.lateral_convs.{1}.conv.{2}", {1: _minus(2)}),
    (rf"backbone\.fpn_output(\d)\.{_PARAM}", "neck.fpn_convs.{1}.conv.{2}", {1: _minus(2)}),
    (rf"proposal_generator\.rpn_head\.conv\.{_PARAM}", "rpn_head.rpn_conv.{1}", {}),
    (rf"proposal_generator\.rpn_head\.objectness_logits\.{_PARAM}", "rpn_head.rpn_cls.{1}", {}),
    (rf"proposal_generator\.rpn_head\.anchor_deltas\.{_PARAM}", "rpn_head.rpn_reg.{1}", {}),
    (
        r"roi_heads\.box_head\.(\d)\.conv(\d)\.weight",
        "roi_head.bbox_head.{1}.shared_convs.{2}.conv.weight",
        {2: _minus(1)},
    ),
    (
        rf"roi_heads\.box_head\.(\d)\.conv(\d)\.norm\.{_PARAM}",
        "roi_head.bbox_head.{1}.shared_convs.{2}.gn.{3}",
        {2: _minus(1)},
    ),
    (rf"roi_heads\.box_head\.(\d)\.fc(\d)\.{_PARAM}", "roi_head.bbox_head.{1}.shared_fcs.{2}.{3}", {2: _minus(1)}),
    (rf"roi_heads\.box_predictor\.(\d)\.cls_score\.{_PARAM}", "roi_head.bbox_head.{1}.fc_cls.{2}", {}),
    (rf"roi_heads\.box_predictor\.(\d)\.bbox_pred\.{_PARAM}", "roi_head.bbox_head.{1}.fc_reg.{2}", {}),
    (r"roi_heads\.mask_head\.mask_fcn(\d)\.weight", "roi_head.mask_head.0.convs.{1}.conv.weight", {1: _minus(1)}),
    (rf"roi_heads\.mask_head\.mask_fcn(\d)\.norm\.{_PARAM}", "roi_head.mask_head.0.convs.{1}.gn.{2}", {1: _minus(1)}),
    (rf"roi_heads\.mask_head\.deconv\.{_PARAM}", "roi_head.mask_head.0.upsample.{1}", {}),
    (rf"roi_heads\.mask_head\.predictor\.{_PARAM}", "roi_head.mask_head.0.conv_logits.{1}", {}),
]
_COMPILED = [(re.compile(pattern + r"\Z"), template, transforms) for pattern, template, transforms in RULES]
# Non-learned arrays some detectron2 files hold: checked (pixel statistics) or dropped (anchors).
_PIXEL_STATISTICS = {"pixel_mean": "mean", "pixel_std": "std"}
_DROPPED = re.compile(r"(proposal_generator\.)?anchor_generator\.cell_anchors\.\d+\Z")


class ConversionError(OrPoseError, ValueError):
    """A detectron2 file that does not convert to the mmdet architecture; names file and keys."""


def rename(name: str) -> str | None:
    """The mmdet name of a detectron2 array, or None when no rule covers it."""
    for pattern, template, transforms in _COMPILED:
        match = pattern.match(name)
        if match:
            groups = [transforms.get(i, str)(g) for i, g in enumerate(match.groups(), start=1)]
            return template.format(None, *groups)
    return None


def read_detectron2_pickle(path: str | Path) -> dict[str, np.ndarray]:
    """The `model` arrays of a detectron2 checkpoint pickle (a flat dict is accepted too)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"detectron2 checkpoint not found: {path}")
    try:
        with open(path, "rb") as file:
            data = pickle.load(file, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise ConversionError(f"{path}: not a detectron2 checkpoint pickle ({error})") from None
    if not isinstance(data, dict):
        raise ConversionError(f"{path}: expected a dict with a 'model' key, found {type(data).__name__}")
    if "blobs" in data:
        raise ConversionError(f"{path}: a Caffe2 'blobs' file (Detectron 1); only detectron2 model files are supported")
    arrays = data.get("model", data)
    bad = [k for k, v in arrays.items() if not isinstance(v, (np.ndarray, torch.Tensor))]
    if bad:
        raise ConversionError(f"{path}: entries that are not arrays: {', '.join(map(str, bad[:5]))}")
    return {k: np.asarray(v) for k, v in arrays.items()}


def convert_state(arrays: dict[str, np.ndarray], model: torch.nn.Module, source: str = "checkpoint") -> dict:
    """Rename `arrays` to `model`'s state dict; ConversionError names every key that does not fit."""
    target = model.state_dict()
    state, unmapped, shapes = {}, [], []
    for name, array in arrays.items():
        if name in _PIXEL_STATISTICS:
            expected = getattr(model.data_preprocessor, _PIXEL_STATISTICS[name]).flatten().cpu().numpy()
            if not np.allclose(array.reshape(-1), expected, atol=1e-3):
                raise ConversionError(
                    f"{source}: {name} {array.reshape(-1).tolist()} differs from the mmdet config's "
                    f"data_preprocessor.{_PIXEL_STATISTICS[name]} {expected.tolist()}"
                )
            continue
        if _DROPPED.match(name):
            continue
        new = rename(name)
        if new is None or new not in target:
            unmapped.append(name if new is None else f"{name} -> {new}")
            continue
        tensor = torch.from_numpy(np.ascontiguousarray(array)).to(target[new].dtype)
        if tuple(tensor.shape) != tuple(target[new].shape):
            shapes.append(f"{name} {tuple(tensor.shape)} -> {new} {tuple(target[new].shape)}")
            continue
        state[new] = tensor
    for name, value in target.items():  # BatchNorm's counters: detectron2's FrozenBN has none
        if name.endswith("num_batches_tracked") and name not in state:
            state[name] = torch.zeros_like(value)
    missing = sorted(set(target) - set(state))
    if unmapped or shapes or missing:
        from orpose.teachers.mm import describe_keys

        raise ConversionError(
            describe_keys(
                f"{source} does not convert to the mmdet model",
                {
                    "keys without a place in it": unmapped,
                    "shape mismatches": shapes,
                    "mmdet keys the file does not provide": missing,
                },
                limit=6,
            )
        )
    return state


def convert_detectron2(
    source: str | Path,
    destination: str | Path,
    mm_config: str = DETECTRON2_X152_CONFIG,
    model: torch.nn.Module | None = None,
) -> dict:
    """Convert `source` (.pkl) into `destination` (.pth) for the mmdet model of `mm_config`.
    Returns the written file's `meta` plus its sha256."""
    from orpose.configs.schema import CONFIG_DIR
    from orpose.teachers.mm import build_mm_model, load_checkpoint_strict, load_mm_config

    source, destination = Path(source), Path(destination)
    if model is None:
        model = build_mm_model("mmdet", load_mm_config(mm_config, None, CONFIG_DIR))
    state = convert_state(read_detectron2_pickle(source), model, source=str(source))
    meta = {
        "source": source.name,
        "source_sha256": sha256_file(source),
        "converter": __name__,
        "mm_config": mm_config,
        "arrays": len(state),
    }
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    torch.save({"state_dict": state, "meta": meta}, partial)
    try:
        digest = load_checkpoint_strict(model, partial)  # the written file, read back strictly
    except Exception:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(destination)
    return dict(meta, sha256=digest)


def seeded_detectron2_arrays(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
    """A detectron2 state dict (names -> shapes) filled from a seeded generator, for checks where
    the published file is not at hand (`make check-detectron2`, the paper teacher's slow test).
    Every array gets a value of its own (FrozenBN statistics, GroupNorm, offsets convs too: a
    wrong mapping cannot hide behind a default), with scales that keep 152 layers of activations
    finite and the heads' outputs varied: class scores above the 0.05 test threshold, offsets of a
    fraction of a pixel, RPN logits below float32 sigmoid saturation (ties, see README)."""
    generator = torch.Generator().manual_seed(seed)

    def uniform(shape, low, high):
        return low + (high - low) * torch.rand(shape, generator=generator)

    arrays = {}
    for name, shape in shapes.items():
        shape = tuple(shape)
        if name.endswith("running_mean"):
            value = uniform(shape, -0.1, 0.1)
        elif name.endswith("running_var"):
            value = uniform(shape, 0.5, 1.5)
        elif ".norm." in name and name.endswith("weight"):
            value = uniform(shape, 0.2, 0.6)
        elif name.endswith("bias"):
            value = uniform(shape, -0.1, 0.1)
        elif len(shape) in (2, 4):
            fan_in = int(np.prod(shape[1:]))
            if "deconv" in name:  # ConvTranspose2d weights are (in, out, k, k)
                fan_in = shape[0] * shape[2] * shape[3] // 4
            scale = 1.0 / np.sqrt(fan_in)
            if "objectness_logits" in name:
                scale *= 0.3
            elif "cls_score" in name:
                scale *= 6.0
            value = torch.randn(shape, generator=generator) * scale
        else:
            value = uniform(shape, -0.1, 0.1)
        arrays[name] = value.float().numpy()
    return arrays


def write_detectron2_pickle(arrays: dict[str, np.ndarray], path: str | Path, author: str) -> Path:
    """A model file as detectron2's model zoo publishes it: `{"model": arrays, "__author__": ...}`
    (detectron2's checkpointer then takes the names as they are)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as file:
        pickle.dump({"model": arrays, "__author__": author}, file)
    return path
