"""What every shard records about how its labels were made."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version

from orpose.checkout import source_checkout
from orpose.configs.schema import TeacherConfig, config_hash, to_dict

__all__ = ["make_provenance", "code_version"]

_PACKAGES = (
    "or-pose-labels",
    "torch",
    "torchvision",
    "mmcv",
    "mmengine",
    "mmdet",
    "mmpose",
    "numpy",
    "ray",
    "h5py",
    "pycocotools",
    "opencv-python-headless",
)


def code_version() -> str:
    """`git describe` of the checkout when there is one (with -dirty), else the package version."""
    root = source_checkout()
    try:
        if root is None:
            raise OSError("no source checkout")
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"], cwd=root, capture_output=True, text=True, timeout=5
        )
        if out.returncode == 0 and out.stdout.strip():
            return f"git:{out.stdout.strip()}"
    except (OSError, subprocess.TimeoutExpired):
        pass
    try:
        return f"package:{version('or-pose-labels')}"
    except PackageNotFoundError:
        return "unknown"


def _versions() -> dict[str, str]:
    found = {}
    for name in _PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def make_provenance(config: TeacherConfig, checkpoints: dict[str, str], code: str | None = None) -> dict[str, str]:
    resolved = to_dict(config)
    tta = {
        "detector": {k: resolved["detector"][k] for k in ("scales", "max_side", "flip", "merge", "merge_iou")},
        "keypoints": {k: resolved["keypoints"][k] for k in ("flip", "box_scales")},
    }
    return {
        "config_json": json.dumps(resolved, sort_keys=True),
        "config_hash": config_hash(config),
        "checkpoints_json": json.dumps(checkpoints, sort_keys=True),
        "code_version": code or code_version(),
        "packages_json": json.dumps(_versions(), sort_keys=True),
        # the multi-view hard set's thresholds beside the single-view ones, when the run fuses
        "thresholds_json": json.dumps(
            {**resolved["thresholds"], **({"fusion": resolved["fusion"]} if config.fusion.enabled else {})},
            sort_keys=True,
        ),
        "tta_json": json.dumps(tta, sort_keys=True),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
