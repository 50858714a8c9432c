"""`labels stats`: plots of a whole run, written as PNG files into a folder."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from orpose.joints import COCO_KEYPOINTS  # noqa: E402
from orpose.label_store.reader import LabelRun  # noqa: E402

__all__ = ["write_stats"]


def write_stats(run: LabelRun | str, out_dir: str | Path) -> list[Path]:
    run = run if isinstance(run, LabelRun) else LabelRun(run)
    threshold = float((run.provenance().get("thresholds_json") or {}).get("keypoint_score", 0.35))
    per_frame, conf, hard, spread, consistency, flags, hard_persons = [], [], [], [], [], [], []
    for labels in run:
        if not labels.labelled:
            continue
        per_frame.append(len(labels))
        if len(labels):
            p = labels.persons
            conf.append(p["keypoints_2d"][..., 2])
            hard.append(p["hard_mask"])
            spread.append(p["keypoint_spread"])
            consistency.append(p["depth_consistency"].ravel())
            flags.append(p["depth_flag"].ravel())
            hard_persons.append(p["hard_valid"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    conf = np.concatenate(conf) if conf else np.zeros((0, 17))
    hard = np.concatenate(hard) if hard else np.zeros((0, 17), bool)
    spread = np.concatenate(spread) if spread else np.zeros((0, 17))
    consistency = np.concatenate(consistency) if consistency else np.zeros(0)
    flags = np.concatenate(flags) if flags else np.zeros(0, int)
    hard_persons = np.concatenate(hard_persons) if hard_persons else np.zeros(0, bool)

    def save(figure, name):
        path = out_dir / name
        figure.tight_layout()
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)

    figure, ax = plt.subplots(figsize=(12, 4.5))
    ax.boxplot([conf[:, j] for j in range(17)], tick_labels=COCO_KEYPOINTS, showfliers=False)
    ax.axhline(threshold, color="red", linestyle="--", label=f"hard threshold {threshold}")
    ax.set_ylabel("keypoint confidence")
    ax.set_title(f"Confidence per keypoint ({len(conf)} persons)")
    ax.tick_params(axis="x", rotation=60)
    ax.legend()
    save(figure, "confidence_per_keypoint.png")

    figure, ax = plt.subplots(figsize=(6, 4))
    ax.hist(per_frame, bins=np.arange(0, max(per_frame, default=0) + 2) - 0.5, color="tab:blue", edgecolor="white")
    ax.set_xlabel("persons per frame")
    ax.set_ylabel("frames")
    ax.set_title(f"Persons per frame ({len(per_frame)} labelled frames)")
    save(figure, "persons_per_frame.png")

    figure, ax = plt.subplots(figsize=(12, 4.5))
    fraction = hard.mean(0) if len(hard) else np.zeros(17)
    ax.bar(range(17), fraction, color="tab:green")
    ax.set_xticks(range(17), COCO_KEYPOINTS, rotation=60)
    ax.set_ylim(0, 1)
    ax.set_ylabel("hard / soft")
    ax.set_title(
        f"Hard keypoints per soft keypoint; hard skeletons: {int(hard_persons.sum())} of {len(hard_persons)} "
        f"({100 * hard_persons.mean() if len(hard_persons) else 0:.0f} %)"
    )
    save(figure, "hard_soft_ratio.png")

    figure, ax = plt.subplots(figsize=(12, 4.5))
    ax.boxplot([spread[:, j] for j in range(17)], tick_labels=COCO_KEYPOINTS, showfliers=False)
    ax.set_ylabel("spread across TTA views (px)")
    ax.set_title("Keypoint uncertainty")
    ax.tick_params(axis="x", rotation=60)
    save(figure, "uncertainty.png")

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    finite = consistency[np.isfinite(consistency)]
    left.hist(finite, bins=20, range=(0, 1), color="tab:purple", edgecolor="white")
    left.set_xlabel("depth consistency")
    left.set_ylabel("keypoints")
    left.set_title(f"Depth consistency ({len(finite)} keypoints with depth)")
    names = ["valid", "hole", "outside view", "no depth"]
    right.bar(names, [int((flags == k).sum()) for k in range(4)], color="tab:gray")
    right.set_title("Keypoints on the depth frame")
    save(figure, "depth_consistency.png")
    return written
