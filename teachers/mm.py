"""Building OpenMMLab models from their config files and loading checkpoints strictly.

mmengine's `load_checkpoint` warns and carries on when keys are missing or unexpected, which
turns a wrong checkpoint into silently wrong labels. `load_checkpoint_strict` refuses such a
file and names the keys. Checkpoints are plain `torch.save` files with a `state_dict` (what
mmengine writes), so the project's own tiny checkpoints take the same path as published ones.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Sequence

import torch

from orpose.errors import OrPoseError
from orpose.frames.files import sha256_file
from orpose.teachers import quiet_optimizer_notice
from orpose.teachers.mm_config import load_mm_config, resolve_mm_config

quiet_optimizer_notice()  # before mmengine's model modules import torch.distributed.optim

__all__ = [
    "describe_keys",
    "forward_context",
    "load_model",
    "prepare_model",
    "resolve_mm_config",
    "load_mm_config",
    "build_mm_model",
    "load_checkpoint_strict",
    "CheckpointMismatchError",
    "pick_device",
]


class CheckpointMismatchError(OrPoseError, RuntimeError):
    """A checkpoint whose keys or shapes do not fit the architecture built from the config."""

    def __init__(self, path: str, missing: list[str], unexpected: list[str], shapes: list[str]):
        self.path, self.missing, self.unexpected, self.shapes = path, missing, unexpected, shapes

        super().__init__(
            describe_keys(
                f"checkpoint {path} does not fit the model built from its config",
                {"missing keys": missing, "unexpected keys": unexpected, "shape mismatches": shapes},
            )
        )


def describe_keys(title: str, groups: dict[str, list[str]], limit: int = 8) -> str:
    """`title; label: a, b, ... (N in all); ...` for each non-empty group of state-dict keys."""
    parts = [title]
    for label, items in groups.items():
        if items:
            parts.append(
                f"{label}: " + ", ".join(items[:limit]) + (f" ... ({len(items)} in all)" if len(items) > limit else "")
            )
    return "; ".join(parts)


def build_mm_model(scope: str, cfg) -> torch.nn.Module:
    """Build `cfg.model` in the registry scope of `scope` ("mmdet" or "mmpose"), without loading
    any pretrained weights (init_cfg is dropped: weights come from our checkpoint only)."""
    from mmengine.registry import DefaultScope

    if scope == "mmdet":
        from mmdet.registry import MODELS
        from mmdet.utils import register_all_modules
    elif scope == "mmpose":
        from mmpose.registry import MODELS
        from mmpose.utils import register_all_modules
    else:
        raise ValueError(f"unknown scope {scope!r}")
    register_all_modules(init_default_scope=False)
    model_cfg = cfg.model.copy()
    _drop_init_cfg(model_cfg)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(model_cfg)
    model.cfg = cfg
    return model


def _drop_init_cfg(node) -> None:
    if isinstance(node, dict):
        node.pop("init_cfg", None)
        node.pop("pretrained", None)
        for value in node.values():
            _drop_init_cfg(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _drop_init_cfg(value)


def load_checkpoint_strict(model: torch.nn.Module, path: str | Path) -> str:
    """Load every weight of `model` from `path` or raise CheckpointMismatchError; returns sha256.

    Tolerated: BatchNorm `num_batches_tracked` counters absent from old checkpoints.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    # mmengine checkpoints hold a `meta` dict with non-tensor objects: torch 2.4 needs weights_only=False.
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise CheckpointMismatchError(str(path), [], ["<no state_dict in file>"], [])
    state = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}
    # torch applies the model's own load hooks (mmpose renames old `keypoint_head.*` keys to
    # `head.*`) before it reports missing and unexpected keys; a size mismatch raises at once.
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as error:
        shapes = [line.strip() for line in str(error).splitlines() if "size mismatch" in line]
        raise CheckpointMismatchError(str(path), [], [], shapes or [str(error)]) from None
    missing = sorted(k for k in result.missing_keys if not k.endswith("num_batches_tracked"))
    unexpected = sorted(result.unexpected_keys)
    if missing or unexpected:
        raise CheckpointMismatchError(str(path), missing, unexpected, [])
    return sha256_file(path)


def worker_gpu_index(assigned: Sequence[str | int], visible: str | None) -> int:
    """torch's index of the first GPU assigned to this process. `assigned`: Ray's physical GPU ids
    for this worker (`ray.get_gpu_ids()`, empty outside Ray); `visible`: CUDA_VISIBLE_DEVICES.
    torch numbers the visible GPUs from 0 in the order CUDA_VISIBLE_DEVICES lists them: Ray sets
    it to the worker's own ids (assigned "3", visible "3": cuda:0); where it is not set, every GPU
    is visible and the index is the id itself."""
    if not assigned:
        return 0
    wanted = str(assigned[0]).strip()
    if visible is None or not visible.strip():
        return int(wanted)
    listed = [item.strip() for item in visible.split(",")]
    if wanted not in listed:
        raise RuntimeError(f"Ray assigned GPU {wanted} to this worker, but CUDA_VISIBLE_DEVICES={visible!r} hides it")
    return listed.index(wanted)


def assigned_gpu_ids() -> list[str]:
    """Ray's GPU ids of this worker; empty outside a Ray worker (or with none assigned)."""
    ray = sys.modules.get("ray")  # a process that never imported Ray is not a Ray worker
    if ray is None or not ray.is_initialized():
        return []
    return [str(gpu) for gpu in ray.get_gpu_ids()]


def cuda_device() -> torch.device:
    """The CUDA device this process's models go to: the GPU Ray assigned to this actor, where it is
    in CUDA_VISIBLE_DEVICES (never a hard-coded cuda:0); cuda:0 outside Ray."""
    return torch.device("cuda", worker_gpu_index(assigned_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")))


def pick_device(preference: str) -> torch.device:
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for but torch sees no GPU")
        return cuda_device()
    return torch.device("cpu")


def load_model(
    scope: str,
    spec,
    checkpoint: str | Path,
    device: torch.device,
    config_root: Path | None = None,
    channels_last: bool = False,
):
    """The one path every teacher model takes: its mm config (with the spec's overrides), the
    architecture, the checkpoint loaded strictly, the device. Returns (model, cfg, sha256)."""
    cfg = load_mm_config(spec.mm_config, spec.cfg_options, config_root)
    model = build_mm_model(scope, cfg)
    digest = load_checkpoint_strict(model, checkpoint)
    return prepare_model(model, device, channels_last), cfg, digest


def seeded_model(scope: str, spec, seed: int, config_root: Path | None = None):
    """A model of a spec's architecture at its seeded initial weights (`torch.manual_seed(seed)`, then mmengine's
    `init_weights`): the tiny teacher's starting point, the probe's students. Returns (model, cfg)."""
    import logging

    from mmengine.logging import MMLogger

    MMLogger.get_current_instance().setLevel(logging.WARNING)  # init_weights logs one line per parameter
    cfg = load_mm_config(spec.mm_config, spec.cfg_options, config_root)
    torch.manual_seed(seed)
    model = build_mm_model(scope, cfg)
    model.init_weights()
    return model, cfg


def prepare_model(model: torch.nn.Module, device: torch.device, channels_last: bool = False) -> torch.nn.Module:
    """Move to the device, eval mode, optionally NHWC memory format."""
    model.to(device).eval()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model


# Recompilations torch.compile allows a function (one per input shape): the paper's detector sees 9 view sizes,
# each in one or two batch sizes, the keypoint model a few crop batches.
COMPILE_SHAPES = 64
_COMPILED_CALLS = threading.Lock()


def compiled(function, enabled: bool):
    """`function` under torch.compile (static shapes: one graph per input shape) when enabled, else itself.

    Calls of every compiled function of the process are serialized: the in-process executor runs its models in
    several threads, each with its own copies, and two threads in dynamo at once fail ("Detected that you are
    using FX to symbolically trace a dynamo-optimized function", seen with 2 model threads on 48 frames)."""
    if not enabled:
        return function
    import torch._dynamo

    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, COMPILE_SHAPES)
    optimized = torch.compile(function, dynamic=False)

    def call(*args, **kwargs):
        with _COMPILED_CALLS:
            return optimized(*args, **kwargs)

    return call


def forward_context(device: torch.device, precision: str):
    """no_grad, plus autocast for bf16 / fp16. fp16 autocast is a GPU feature: refused on CPU."""
    import contextlib

    if precision == "fp32":
        return torch.no_grad()
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision 'fp16' needs a GPU; use 'bf16' or 'fp32' on CPU")
    stack = contextlib.ExitStack()
    stack.enter_context(torch.no_grad())
    stack.enter_context(
        torch.autocast(device_type=device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    )
    return stack
