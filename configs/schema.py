"""Typed configs: a config file is a Python file with one dict; it is checked field by field on load.

    teacher = dict(name="tiny", detector=dict(...), keypoints=dict(...), lifter=dict(...), ...)

`load_teacher_config(path, overrides)` applies dotted `key=value` overrides (values parsed as
Python literals) to the dict, then builds the dataclasses below. Unknown keys, missing keys and
wrong types raise `ConfigError` naming the field path. The resolved config serialises to JSON and
has a stable hash (`config_hash`), which travels with every label set.

Not for: the OpenMMLab model configs (`mm_config` fields point to those; they stay mmengine files).
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import hashlib
import json
import runpy
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from orpose.errors import USAGE, OrPoseError

__all__ = [
    "ConfigError",
    "RunSpec",
    "labels_hash",
    "DetectorSpec",
    "KeypointSpec",
    "LifterSpec",
    "Thresholds",
    "FusionSpec",
    "TeacherConfig",
    "load_teacher_config",
    "parse_overrides",
    "apply_overrides",
    "from_dict",
    "to_dict",
    "config_hash",
    "CONFIG_DIR",
]

CONFIG_DIR = Path(__file__).parent


class ConfigError(OrPoseError, ValueError):
    """A config field that is missing, unknown or of the wrong type or value; names the file and the field."""

    exit_code = USAGE

    def __init__(self, source: str, field_path: str, detail: str):
        self.source, self.field, self.detail = source, field_path, detail
        super().__init__(f"{source}: field {field_path!r}: {detail}")


@dataclass(frozen=True)
class DetectorSpec:
    """Person detector (mmdet) and its test-time augmentation."""

    mm_config: str  # mmdet config: "mmdet::<path under the package's configs>" or a file path
    checkpoint: str  # file name in the weights folder, or a path
    cfg_options: dict = field(
        default_factory=dict
    )  # dotted overrides of the mm config, e.g. {"model.backbone.depth": 152}
    scales: tuple[int, ...] = (800,)  # TTA: shorter side of each view, pixels
    max_side: int = 1333  # cap on the longer side of a view
    flip: bool = True  # TTA: also run the horizontally flipped views
    merge: Literal["nms", "box_voting", "wbf"] = "box_voting"  # how the views' boxes are merged
    merge_iou: float = 0.55  # IoU that makes two views' boxes the same person
    max_persons: int = 20  # per frame, after merging
    views_per_forward: int = 4  # images per network call (memory bound)
    # Which features a merged person's mask comes from. "member": the view of its best-scoring member, at that
    # member's box; every view's features stay alive until the frame's views are merged, so memory grows with
    # frames x views. "merged": one view per frame (the first scale, not flipped), at the merged box; the
    # other views' features are freed as soon as their boxes are read, so memory is bounded by
    # views_per_forward plus one view per frame (teachers/detector.py).
    masks: Literal["member", "merged"] = "member"
    # Kernel of each compiled op (teachers/kernels.py): "torchvision" (default) or "mmcv". Both give
    # the same numbers on CPU (tests/teachers/test_kernels.py: RoIAlign and deformable convolution to
    # the bit, NMS the same indices, ties included); torchvision's ship compiled for CUDA in its wheel,
    # so with all three on torchvision a GPU node needs no mmcv CUDA ops (and no nvcc). "mmcv" keeps
    # the model exactly as its mmdet config builds it (on a GPU that needs mmcv built with CUDA ops).
    # RoIAlign (average pooling) of the RoI heads: torchvision's ran 2.2 x faster on CPU.
    roi_align: Literal["torchvision", "mmcv"] = "torchvision"
    nms: Literal["torchvision", "mmcv"] = "torchvision"  # NMS / batched NMS of the RPN and RoI heads
    # deformable convolution v1 (DCN); also "matmul": bilinear sampling and one matrix product over the groups in
    # plain torch ops, which runs in the autocast precision (torchvision's kernel keeps fp32 under autocast)
    deform_conv: Literal["torchvision", "mmcv", "matmul"] = "torchvision"


@dataclass(frozen=True)
class KeypointSpec:
    """Top-down keypoint model (mmpose) and its test-time augmentation."""

    mm_config: str
    checkpoint: str
    cfg_options: dict = field(default_factory=dict)
    flip: bool = True  # TTA: flipped crops, heatmaps flipped back with the COCO flip pairs
    box_scales: tuple[float, ...] = (1.0,)  # TTA: crop sizes relative to the standard 1.25 x box
    crops_per_forward: int = 32  # crops per network call


@dataclass(frozen=True)
class LifterSpec:
    """2D-to-3D lifter (mmpose PoseLifter, Martinez et al.)."""

    mm_config: str
    checkpoint: str
    cfg_options: dict = field(default_factory=dict)
    h36m_box_center: tuple[float, float] = (528.0, 427.0)  # 2D poses are moved into H36M's framing (mmpose's
    h36m_box_scale: float = 400.0  # norm_pose_2d stats) before the codec's own normalisation
    poses_per_forward: int = 1024


@dataclass(frozen=True)
class Thresholds:
    """Which boxes and keypoints become labels (seed 002: 0.7, 0.35, 4)."""

    box_score: float = 0.7  # person box kept if detector score >= this
    keypoint_score: float = 0.35  # a keypoint is "hard" if its confidence > this
    min_keypoints: int = 4  # a hard skeleton needs at least this many hard keypoints
    hard_dropped_joint: Literal["mean_pose"] = "mean_pose"  # what the lifter gets for a dropped 2D joint
    depth_radius_px: float = 3.0  # search radius (color pixels) for a depth reading around a keypoint


@dataclass(frozen=True)
class RunSpec:
    """How a labelling run is executed; none of it changes the labels (not in the run's identity)."""

    shard_size: int = 64  # frames per HDF5 shard (the unit of commit and resume)
    batch_size: int = 8  # frames per batch handed to each model stage
    detector_actors: int = 1  # actors holding a detector (one per GPU on a cluster)
    keypoint_actors: int = 1
    lifter_actors: int = 1
    gpus_per_actor: float = 0.0  # GPUs each model actor reserves; 0 on CPU machines
    # Per model stage, GPUs each of its actors reserves (None: gpus_per_actor). Fractions share a
    # GPU: detector_gpus=1 keypoint_gpus=0.5 lifter_gpus=0.5 puts the keypoint model and the lifter
    # together on one GPU beside the detector's. Each actor's model goes to the GPU Ray assigned it.
    detector_gpus: float | None = None
    keypoint_gpus: float | None = None
    lifter_gpus: float | None = None
    cpus_per_actor: float = 0.5  # CPUs each model actor reserves
    # Ray actors that decode frames, and as many that assemble labels. None: one of each per 4 detector actors
    # (at least 1). One decode actor reads about 40 frames/s of 640x480 PNG; each extra Ray worker process
    # costs its start-up and a share of the cores (measured on 2 cores, tiny teacher, 2 model actors: 2 of
    # each made the run 9 % slower than 1 of each).
    cpu_tasks: int | None = None
    # Intra-op threads per model actor of the Ray executor, and per model thread of the in-process
    # executor when it runs several (run.detector_actors > 1); one model thread takes every core.
    torch_threads: int = 1
    # One Ray actor per device holds detector, keypoint model and lifter (stages.graph.fuse_models); "whole":
    # each model actor runs decode and assemble too (no CPU actor pools). None: on CPUs "whole" under Ray and
    # fused in process (measured with `labels bench`: faster start, less memory, same steady state); separate
    # pools when they reserve GPUs (not measured yet).
    fuse_models: bool | Literal["whole"] | None = None
    max_rejected_fraction: float = 0.2  # stop the run when more frames than this are rejected

    @property
    def cpu_actors(self) -> int:
        """Actors per CPU stage (decode, assemble): `cpu_tasks`, or one per 4 detector actors."""
        return self.cpu_tasks if self.cpu_tasks is not None else max(1, -(-self.detector_actors // 4))


@dataclass(frozen=True)
class FusionSpec:
    """Multi-view fusion (docs/fusion.md): the views of one instant, filmed by calibrated cameras, triangulated
    into `pose3d_room`. Needs every camera's pose (`camera_to_room` in calibration.json)."""

    enabled: bool = False  # group frames into instants, plan shards of whole instants, fuse at commit
    instant_tolerance_s: float = 1 / 60  # frames of different cameras this close in time are one instant
    max_disagreement_px: float = 25.0  # association: two views' persons agree when they reproject within this
    outlier_px: float = 20.0  # triangulation: a view farther than this from the joint's point is an outlier
    min_views: int = 2  # views a joint needs for a point
    # pose3d_room_hard: a joint with this many views and a mean reprojection error at most hard_max_error_px.
    # Measured on synthetic rigs (docs/fusion.md): 5 px keeps 82-86 % of the fused joints and cuts their q90 error
    # from 69-72 mm to 48 mm; hard_min_views=3 keeps 66-70 % at a q90 of 38-41 mm (two views cannot vote out).
    hard_min_views: int = 2
    hard_max_error_px: float = 5.0


@dataclass(frozen=True)
class TeacherConfig:
    name: str
    detector: DetectorSpec
    keypoints: KeypointSpec
    lifter: LifterSpec
    thresholds: Thresholds = field(default_factory=Thresholds)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: the GPU when there is one
    # autocast dtype of the backbones/neck, keypoint model and lifter; the detector's RPN and RoI
    # heads stay fp32 (mmcv's CPU RoIAlign has no bf16 kernel). fp16: GPU only.
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    channels_last: bool = False  # NHWC memory format for the convolutional models (faster on recent GPUs)
    # torch.compile of the detector's backbone and neck and of the keypoint model, one graph per input shape
    # (the first frames of each TTA view size pay the compilation: minutes on a CPU)
    compile: bool = False
    cudnn_benchmark: bool = False  # let cuDNN time its convolution algorithms per input shape (GPU only)
    weights_dir: str = "weights"  # where checkpoint file names are looked up (relative to the working dir)
    run: RunSpec = field(default_factory=RunSpec)  # execution settings of `labels run`
    fusion: FusionSpec = field(default_factory=FusionSpec)  # multi-view fusion of calibrated rigs (off by default)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _check(value: Any, tp: Any, path: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(source, path, f"must be one of {list(typing.get_args(tp))}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _check(value, option, path, source)
            except ConfigError:
                continue
        raise ConfigError(source, path, f"expected {tp}, got {value!r}")
    if tp is type(None):
        if value is not None:
            raise ConfigError(source, path, f"expected null, got {value!r}")
        return None
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path, source)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(source, path, f"expected a list, got {value!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            if not value:
                raise ConfigError(source, path, "must not be empty")
            return tuple(_check(v, args[0], f"{path}[{i}]", source) for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(source, path, f"expected {len(args)} values, got {len(value)}")
        return tuple(_check(v, a, f"{path}[{i}]", source) for i, (v, a) in enumerate(zip(value, args)))
    if tp is dict or origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(source, path, f"expected a dict, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(source, path, f"expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(source, path, f"expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(source, path, f"expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(source, path, f"expected a string, got {value!r}")
        return value
    raise TypeError(f"schema type {_type_name(tp)} at {path} is not supported")


def from_dict(cls: Any, data: Any, path: str = "", source: str = "<config>") -> Any:
    """Build dataclass `cls` from a dict, checking every field; errors name the dotted path."""
    if not isinstance(data, Mapping):
        raise ConfigError(source, path or cls.__name__, f"expected a dict, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(source, f"{path}.{unknown[0]}".lstrip("."), f"unknown key (known: {sorted(fields)})")
    values = {}
    for name, f in fields.items():
        sub = f"{path}.{name}".lstrip(".")
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(source, sub, "missing")
            continue
        values[name] = _check(data[name], hints[name], sub, source)
    for name, value in values.items():
        if isinstance(value, float) and name.endswith(("score", "iou", "fraction")) and not 0.0 <= value <= 1.0:
            raise ConfigError(source, f"{path}.{name}".lstrip("."), f"must lie in [0, 1], got {value}")
        if isinstance(value, int) and not isinstance(value, bool) and name.startswith(("max_", "min_")) and value < 0:
            raise ConfigError(source, f"{path}.{name}".lstrip("."), f"must be >= 0, got {value}")
        if name.endswith(("_per_forward", "_actors", "_size", "cpu_tasks", "torch_threads")) and (
            value is not None and value < 1
        ):
            raise ConfigError(source, f"{path}.{name}".lstrip("."), f"must be >= 1, got {value}")
        if name.endswith(("_px", "_s")) and isinstance(value, (int, float)) and not value >= 0:
            raise ConfigError(source, f"{path}.{name}".lstrip("."), f"must be >= 0, got {value}")
        if name in ("min_views", "hard_min_views") and value < 2:
            raise ConfigError(source, f"{path}.{name}".lstrip("."), f"a point needs two views at least, got {value}")
    return cls(**values)


def to_dict(config: Any) -> dict:
    """Plain JSON-ready dict of a config (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_hash(config: Any) -> str:
    """sha256 of the canonical JSON of the resolved config."""
    return hashlib.sha256(json.dumps(to_dict(config), sort_keys=True).encode()).hexdigest()


def labels_hash(config: "TeacherConfig") -> str:
    """sha256 of everything that decides the labels: the config without its `run` section and
    without `device`, `weights_dir`, batch sizes and the kernel choices (where and how fast, not
    what; both kernels of each op give the same numbers on CPU, tested)."""
    data = to_dict(config)
    for key in ("run", "device", "weights_dir"):
        data.pop(key, None)
    if not config.fusion.enabled:
        data.pop("fusion", None)  # fusion off: the labels (and their hash) are what they were before it existed
    for section in ("detector", "keypoints", "lifter"):
        for key in ("views_per_forward", "crops_per_forward", "poses_per_forward", "roi_align", "nms", "deform_conv"):
            data[section].pop(key, None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`["detector.scales=[600,800]", "device=cpu"]` -> {"detector.scales": [600, 800], "device": "cpu"}."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError("<command line>", item, "overrides are written key=value, e.g. thresholds.box_score=0.5")
        if raw.strip().lower() in ("true", "false"):  # shell habit (and what the bool error asks for)
            parsed[key.strip()] = raw.strip().lower() == "true"
            continue
        try:
            parsed[key.strip()] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            parsed[key.strip()] = raw  # a bare word is a string
    return parsed


def apply_overrides(data: dict, overrides: Mapping[str, Any], source: str) -> dict:
    data = copy.deepcopy(data)
    for dotted, value in overrides.items():
        target = data
        keys = dotted.split(".")
        for depth, key in enumerate(keys[:-1]):
            target.setdefault(key, {})  # a section left at its defaults; unknown names fail validation
            if not isinstance(target[key], dict):
                raise ConfigError(source, ".".join(keys[: depth + 1]), "is a value, not a section")
            target = target[key]
        target[keys[-1]] = value
    return data


def resolve_config_path(name_or_path: str | Path) -> Path:
    """`tiny` -> configs/teachers/tiny.py; a path stays a path."""
    path = Path(name_or_path)
    if path.suffix == ".py" and path.exists():
        return path
    named = CONFIG_DIR / "teachers" / f"{name_or_path}.py"
    if named.exists():
        return named
    known = sorted(p.stem for p in (CONFIG_DIR / "teachers").glob("*.py") if not p.stem.startswith("_"))
    raise ConfigError(str(name_or_path), "<file>", f"no such config file or teacher name (teachers: {known})")


def load_teacher_config(name_or_path: str | Path, overrides: Mapping[str, Any] | None = None) -> TeacherConfig:
    path = resolve_config_path(name_or_path)
    namespace = runpy.run_path(str(path))
    if "teacher" not in namespace or not isinstance(namespace["teacher"], dict):
        raise ConfigError(str(path), "teacher", "the config file must define a dict named `teacher`")
    data = apply_overrides(namespace["teacher"], overrides or {}, str(path))
    return from_dict(TeacherConfig, data, "", str(path))
