"""Checkpoint files: the published ones (fetched where a network exists) and the tiny ones the
project makes itself with a fixed seed.

OpenMMLab file names end in the first 8 hex digits of the file's sha256 (`...-c161b7de_2022.pth`
or `...-9ff7e76f.pth`); a fetched file is checked against that, and against a full sha256 when
one is recorded here.

A checkpoint published only for detectron2 (the paper's X-152 cascade) is fetched as detectron2's
`.pkl` beside the target and converted by `labels convert-detectron2` (teachers/convert_detectron2.py);
the converted file records the source's sha256 in its `meta`.
"""

from __future__ import annotations

import re
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import orpose
from orpose.configs.schema import CONFIG_DIR, TeacherConfig
from orpose.errors import OrPoseError
from orpose.frames.files import sha256_file

__all__ = [
    "PUBLISHED",
    "PublishedCheckpoint",
    "checkpoint_path",
    "fetch",
    "missing_checkpoints",
    "init_seeded_weights",
    "WeightsMissingError",
]


@dataclass(frozen=True)
class PublishedCheckpoint:
    url: str | None  # None: no public download; `note` says how to get the file
    sha256: str | None = None  # full digest when known; else the 8-digit prefix in the name is checked
    note: str = ""
    # True: `url` is a detectron2 model file, converted into the mmdet checkpoint after download.
    detectron2: bool = False

    @property
    def source_name(self) -> str:
        return self.url.rsplit("/", 1)[-1] if self.url else ""


PUBLISHED: dict[str, PublishedCheckpoint] = {
    "cascade_mask_rcnn_x101_32x8d_fpn_mstrain_3x_coco_20210719_180640-9ff7e76f.pth": PublishedCheckpoint(
        "https://download.openmmlab.com/mmdetection/v2.0/cascade_rcnn/cascade_mask_rcnn_x101_32x8d_fpn_mstrain_3x_coco/"
        "cascade_mask_rcnn_x101_32x8d_fpn_mstrain_3x_coco_20210719_180640-9ff7e76f.pth"
    ),
    # detectron2 model zoo, Misc/cascade_mask_rcnn_X_152_32x8d_FPN_IN5k_gn_dconv (model id 18131413).
    "cascade-mask-rcnn_x152-32x8d-dconv-gn_fpn_in5k_detectron2-e76410.pth": PublishedCheckpoint(
        "https://dl.fbaipublicfiles.com/detectron2/Misc/cascade_mask_rcnn_X_152_32x8d_FPN_IN5k_gn_dconv/18131413/"
        "model_0039999_e76410.pkl",
        detectron2=True,
        note="detectron2's model zoo publishes it for detectron2 only; converted to mmdet after download",
    ),
    "td-hm_hrnet-w48_8xb32-210e_coco-384x288-c161b7de_20220915.pth": PublishedCheckpoint(
        "https://download.openmmlab.com/mmpose/v1/body_2d_keypoint/topdown_heatmap/coco/"
        "td-hm_hrnet-w48_8xb32-210e_coco-384x288-c161b7de_20220915.pth"
    ),
    "simple3Dbaseline_h36m-f0ad73a4_20210419.pth": PublishedCheckpoint(
        "https://download.openmmlab.com/mmpose/body3d/simple_baseline/simple3Dbaseline_h36m-f0ad73a4_20210419.pth"
    ),
}


class WeightsMissingError(OrPoseError, FileNotFoundError):
    """Checkpoints that are needed and not on disk; the message says where to get them."""


# The folder of the installed package: `orpose/data` ships the tiny teacher's trained checkpoints (a link to
# the repository's `data/` in a checkout, package data in a wheel), so `data/tiny_teacher` resolves there.
PACKAGE_DIR = Path(orpose.__file__).resolve().parent


def checkpoint_path(weights_dir: str | Path, name: str) -> Path:
    """A checkpoint name is relative to the weights folder; an absolute path stays as it is. A
    relative weights folder is taken from the working directory, or else from the installed package
    (where the tiny teacher's trained checkpoints ship: `data/tiny_teacher`)."""
    path = Path(name)
    if path.is_absolute():
        return path
    folder = Path(weights_dir)
    if not folder.is_absolute() and not (folder / path).exists() and (PACKAGE_DIR / folder / path).exists():
        folder = PACKAGE_DIR / folder
    return folder / path


def _name_digest_prefix(name: str) -> str | None:
    match = re.search(r"-([0-9a-f]{8})(?:_\d{8})?\.pth$", name)
    return match.group(1) if match else None


def missing_checkpoints(config: TeacherConfig, weights_dir: str | Path | None = None) -> list[tuple[str, Path]]:
    wd = weights_dir or config.weights_dir
    needed = [config.detector.checkpoint, config.keypoints.checkpoint, config.lifter.checkpoint]
    return [(name, checkpoint_path(wd, name)) for name in needed if not checkpoint_path(wd, name).exists()]


def missing_message(config: TeacherConfig, missing: list[tuple[str, Path]]) -> str:
    lines = [f"teacher {config.name!r} needs {len(missing)} checkpoint file(s) that are not on disk:"]
    for name, path in missing:
        entry = PUBLISHED.get(name)
        source = entry.url if entry and entry.url else (entry.note if entry else "made by `make tiny-weights`")
        lines.append(f"  {path}\n      from: {source}")
        if entry is not None and entry.detectron2:
            pkl = path.with_name(entry.source_name)
            lines.append(
                f"      a detectron2 file: download it to {pkl}, then convert it:\n"
                f"      labels convert-detectron2 {pkl} {path} --mm-config {config.detector.mm_config}"
            )
    lines.append(f"Download them there (or run `labels weights --teacher {config.name}` where a network exists).")
    return "\n".join(lines)


def _download(url: str, path: Path, timeout: float) -> bool:
    """`url` into `path` through a `.partial` file; False when the network fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out, length=1 << 22)
    except (urllib.error.URLError, OSError, TimeoutError):
        partial.unlink(missing_ok=True)
        return False
    partial.rename(path)
    return True


def fetch(config: TeacherConfig, weights_dir: str | Path | None = None, timeout: float = 30.0) -> list[Path]:
    """Download the missing published checkpoints into the weights folder, verifying digests.
    Raises WeightsMissingError (with the names, URLs and target paths) when that cannot be done."""
    missing = missing_checkpoints(config, weights_dir)
    fetched, failed = [], []
    for name, path in missing:
        entry = PUBLISHED.get(name)
        if entry is None or entry.url is None:
            failed.append((name, path))
            continue
        if entry.detectron2:  # download detectron2's file beside the target (once), then convert it
            from orpose.teachers.convert_detectron2 import convert_detectron2

            source = path.with_name(entry.source_name)
            if not source.exists() and not _download(entry.url, source, timeout):
                failed.append((name, path))
                continue
            convert_detectron2(source, path, mm_config=config.detector.mm_config)
            fetched.append(path)
            continue
        partial = path.with_name(path.name + ".fetched")
        if not _download(entry.url, partial, timeout):
            failed.append((name, path))
            continue
        digest = sha256_file(partial)
        expected = entry.sha256 or _name_digest_prefix(name)
        if expected and not digest.startswith(expected):
            partial.unlink()
            raise RuntimeError(f"{name}: sha256 {digest} does not match the published {expected}")
        partial.rename(path)
        fetched.append(path)
    if failed:
        raise WeightsMissingError(missing_message(config, failed))
    return fetched


def init_seeded_weights(config: TeacherConfig, weights_dir: str | Path, seed: int = 0) -> dict[str, str]:
    """Seeded initial weights for a teacher's three models, saved as mmengine-style checkpoints
    (`{"state_dict": ..., "meta": ...}`) under the config's checkpoint names. Returns sha256s.

    For the tiny teacher (`make tiny-weights`) and for tests that run a real-size architecture
    without its published weights; they load through the same strict path as published files."""
    import torch

    from orpose.teachers.mm import seeded_model

    digests = {}
    for scope, spec in (("mmdet", config.detector), ("mmpose", config.keypoints), ("mmpose", config.lifter)):
        model, _ = seeded_model(scope, spec, seed, CONFIG_DIR)
        path = checkpoint_path(weights_dir, spec.checkpoint)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": model.state_dict(), "meta": {"seed": seed, "mm_config": spec.mm_config}}, path)
        digests[spec.checkpoint] = sha256_file(path)
    return digests
