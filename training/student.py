"""Training a student on the labels with mmengine's Runner: the shards as an mmpose dataset.

`OrPoseKeypointDataset` (registered in mmpose's DATASETS) reads a run as a top-down keypoint dataset:
one data info per person, its box, its 17 COCO keypoints and the weight each keypoint gets in the heatmap loss:
the teacher's confidence (`label_set="soft"`, Srivastav et al. 2020's soft set) or 1 for hard keypoints and 0
otherwise (`label_set="hard"`). So a standard mmpose top-down config trains from the shards by naming this
dataset type (`configs/students/`), and `labels train-student CONFIG --run RUN` runs it (`train_student`).
Color images; depth students read the shards through `PoseLabelDataset` (docs/students.md).

The weights travel as mmpose 1.x's two-channel `keypoints_visible` (N, K, 2): "labelled" (weight > 0) and the
weight, which mmpose's flip carries with the keypoints and `GenerateTarget` splits off as
`keypoints_visible_weights`; `ApplyKeypointWeights`, placed after `GenerateTarget`, multiplies the heatmap
loss weights by it. (Handing the confidence to `GenerateTarget` as the visibility would draw no Gaussian for a
keypoint below 0.5: a low-confidence keypoint would be trained towards an empty heatmap.)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["OrPoseKeypointDataset", "train_student", "logged_losses"]


def _register():
    from mmcv.transforms import BaseTransform
    from mmpose.datasets.datasets.base import BaseCocoStyleDataset
    from mmpose.registry import DATASETS, TRANSFORMS

    @TRANSFORMS.register_module(name="ApplyKeypointWeights", force=True)
    class ApplyKeypointWeights(BaseTransform):
        """After `GenerateTarget`: the heatmap loss weight of each keypoint times its label weight (the second
        channel of `keypoints_visible`, see the module docstring)."""

        def transform(self, results: dict) -> dict:
            weights = results.get("keypoints_visible_weights")
            if weights is not None:
                results["keypoint_weights"] = (results["keypoint_weights"] * weights).astype(np.float32)
            return results

    @DATASETS.register_module(name="OrPoseKeypointDataset", force=True)
    class OrPoseKeypointDataset(BaseCocoStyleDataset):
        """A run of or-pose-labels as an mmpose top-down dataset (see the module docstring). `run`: the run
        directory; `label_set`: "soft" or "hard"; `min_score`: the detector score a person needs."""

        METAINFO: dict = dict(from_file="configs/_base_/datasets/coco.py")

        def __init__(self, run: str = "", label_set: str = "soft", min_score: float | None = None, **kwargs):
            if label_set not in ("soft", "hard"):
                raise ValueError(f"label_set must be 'soft' or 'hard', got {label_set!r}")
            self.run, self.label_set, self.min_score = run, label_set, min_score
            super().__init__(**kwargs)

        def load_data_list(self) -> list[dict]:
            from orpose.label_store.reader import LabelRun

            data_list = []
            for shard in LabelRun(self.run).shards():
                frames, persons, offsets = shard.frames, shard.persons, shard.person_offset
                for row in np.flatnonzero(frames["status"] == 0):
                    for at in range(offsets[row], offsets[row + 1]):
                        if self.label_set == "hard" and not persons["hard_valid"][at]:
                            continue
                        if self.min_score is not None and persons["score"][at] < self.min_score:
                            continue
                        keypoints = persons["keypoints_2d"][at]
                        weights = (
                            np.clip(keypoints[:, 2], 0.0, 1.0)
                            if self.label_set == "soft"
                            else persons["hard_mask"][at].astype(np.float32)
                        )
                        x1, y1, x2, y2 = (float(v) for v in persons["box"][at])
                        data_list.append(
                            {
                                "img_id": len(data_list),
                                "img_path": str(frames["color_path"][row]),
                                "bbox": np.array([[x1, y1, x2, y2]], dtype=np.float32),
                                "bbox_score": np.array([persons["score"][at]], dtype=np.float32),
                                "num_keypoints": int((weights > 0).sum()),
                                "keypoints": keypoints[None, :, :2].astype(np.float32),
                                "keypoints_visible": np.stack([weights > 0, weights], axis=-1)[None].astype(np.float32),
                                "area": np.array((x2 - x1) * (y2 - y1) * 0.53, dtype=np.float32),
                                "iscrowd": 0,
                                "segmentation": None,
                                "id": len(data_list),
                                "category_id": np.array(1),
                            }
                        )
            if not data_list:
                raise ValueError(f"{self.run}: no {self.label_set} persons to train on")
            return data_list

    return OrPoseKeypointDataset


OrPoseKeypointDataset = None  # registered on import by mmengine's custom_imports (the student configs)
try:  # noqa: SIM105 - a light install has no mmpose; importing this module is then an error only when used
    OrPoseKeypointDataset = _register()
except ImportError:
    pass


def logged_losses(work_dir: str | Path) -> list[tuple[int, float]]:
    """(iteration, loss) of every logged iteration of the latest run in `work_dir` (mmengine's scalars)."""
    files = sorted(Path(work_dir).glob("*/vis_data/scalars.json"))
    if not files:
        return []
    out = []
    for line in files[-1].read_text().splitlines():
        record = json.loads(line)
        if "loss" in record and "iter" in record:
            out.append((int(record["iter"]), float(record["loss"])))
    return out


def train_student(
    config: str | Path, run: str | Path, work_dir: str | Path, iters: int | None = None, overrides: dict | None = None
) -> Path:
    """Train the student `config` (an mmpose config) on the run; returns the last checkpoint's path."""
    import orpose.teachers  # first: mmcv's extension on torchvision where mmcv-lite is installed

    orpose.teachers.quiet_optimizer_notice()

    # isort: split
    from mmengine.config import Config
    from mmengine.runner import Runner

    cfg = Config.fromfile(str(config))
    cfg.train_dataloader.dataset.run = str(Path(run).resolve())
    cfg.work_dir = str(work_dir)
    if iters is not None:
        cfg.train_cfg.max_iters = iters
        cfg.default_hooks.checkpoint.interval = iters
    if overrides:
        cfg.merge_from_dict(overrides)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return Path(work_dir) / f"iter_{cfg.train_cfg.max_iters}.pth"
