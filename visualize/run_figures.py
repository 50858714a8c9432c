"""The figures of a run's statistics (`RunStatistics`, streamed in bounded memory), each a matplotlib figure and
its title: `labels report` embeds them in its page, `labels stats` writes them as PNG files."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from orpose.joints import COCO_KEYPOINTS  # noqa: E402
from orpose.label_store.statistics import RunStatistics  # noqa: E402
from orpose.visualize.drawing import COCO_JOINT_COLORS, SIDE_COLORS  # noqa: E402

__all__ = ["run_figures", "score_figure", "persons_per_frame_figure", "per_joint_figures", "depth_figure"]


def no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666")


def per_joint_boxes(ax, histogram, ylabel: str) -> None:
    """Box plots per joint read from a streamed histogram: box q25-q75, line median, whiskers q05-q95."""
    q = histogram.quantiles([0.05, 0.25, 0.5, 0.75, 0.95])
    boxes = [
        {"label": name, "whislo": a, "q1": b, "med": c, "q3": d, "whishi": e, "fliers": []}
        for name, (a, b, c, d, e) in zip(COCO_KEYPOINTS, q)
        if np.isfinite(c)
    ]
    if not boxes:
        no_data(ax, "no persons")
        return
    artists = ax.bxp(boxes, showfliers=False, patch_artist=True)
    for patch, color in zip(artists["boxes"], COCO_JOINT_COLORS):
        patch.set_facecolor(color)
        patch.set_alpha(0.55)
    for median in artists["medians"]:
        median.set_color("black")
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", rotation=60)


def side_legend(ax) -> None:
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.7, label=f"{side} side") for side, c in SIDE_COLORS.items()]
    ax.legend(handles=handles, fontsize=8, loc="upper right")


def score_figure(stats: RunStatistics, box_threshold: float | None) -> tuple[Figure, str]:
    figure, ax = plt.subplots(figsize=(6.5, 3.6))
    if stats.persons:
        edges = stats.score.edges
        ax.bar(edges[:-1], stats.score.counts[0], width=np.diff(edges), align="edge", color="#4c72b0")
        if box_threshold is not None:
            ax.axvline(box_threshold, color="red", linestyle="--", label=f"box_score threshold {box_threshold}")
            ax.legend(fontsize=8)
    else:
        no_data(ax, "no persons")
    ax.set_xlabel("detector score after the TTA merge (0-1)")
    ax.set_ylabel("persons")
    ax.set_title(f"Detector score ({stats.persons} persons)")
    figure.tight_layout()
    return figure, "Detector score histogram"


def persons_per_frame_figure(stats: RunStatistics) -> tuple[Figure, str]:
    figure, ax = plt.subplots(figsize=(6.5, 3.6))
    per_frame = sorted(stats.persons_per_frame.items())
    if per_frame:
        ax.bar([n for n, _ in per_frame], [c for _, c in per_frame], color="#4c72b0")
        ax.set_xticks([n for n, _ in per_frame])
    else:
        no_data(ax, "no labelled frame")
    ax.set_xlabel("persons in the frame")
    ax.set_ylabel("labelled frames")
    ax.set_title(f"Persons per frame ({stats.labelled} labelled frames)")
    figure.tight_layout()
    return figure, "Persons per frame"


def per_joint_figures(stats: RunStatistics, threshold: float) -> list[tuple[Figure, str]]:
    """Confidence and TTA spread per joint (box plots), and each joint's share of the hard set."""
    figures = []
    figure, ax = plt.subplots(figsize=(12, 4.2))
    per_joint_boxes(ax, stats.confidence, "keypoint confidence (0-1)")
    ax.axhline(threshold, color="red", linestyle="--", label=f"hard threshold keypoint_score {threshold}")
    ax.set_ylim(0, 1.02)
    ax.set_title("Keypoint confidence per joint (box: 25-75 %, whiskers: 5-95 %)")
    side_legend(ax)
    figure.tight_layout()
    figures.append((figure, "Keypoint confidence per joint"))

    figure, ax = plt.subplots(figsize=(12, 4.2))
    per_joint_boxes(ax, stats.spread, "spread across TTA views (px)")
    ax.set_title("TTA spread per joint: how far the test-time views disagree (box: 25-75 %, whiskers: 5-95 %)")
    side_legend(ax)
    figure.tight_layout()
    figures.append((figure, "TTA spread per joint"))

    figure, ax = plt.subplots(figsize=(12, 4.2))
    if stats.persons:
        ax.bar(range(17), stats.hard_fraction_per_joint(), color=COCO_JOINT_COLORS, alpha=0.8)
    else:
        no_data(ax, "no persons")
    ax.set_xticks(range(17), COCO_KEYPOINTS, rotation=60)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of persons with the joint hard")
    ax.set_title("Fraction of each joint in the hard set")
    side_legend(ax)
    figure.tight_layout()
    figures.append((figure, "Fraction of each joint in the hard set"))
    return figures


def depth_figure(stats: RunStatistics) -> tuple[Figure, str]:
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
    finite = int(stats.depth_consistency.total()[0])
    if finite:
        edges = stats.depth_consistency.edges
        left.bar(edges[:-1], stats.depth_consistency.counts[0], width=np.diff(edges), align="edge", color="#8172b2")
    else:
        no_data(left, "no keypoint with depth")
    left.set_xlabel("depth consistency (0 = measured depth disagrees, 1 = agrees)")
    left.set_ylabel("keypoints")
    left.set_title(f"Depth consistency ({finite} keypoints with depth)")
    names = ["valid reading", "hole", "outside view", "no depth"]
    right.bar(names, stats.depth_flags, color="#777")
    right.set_ylabel("keypoints")
    right.set_title("Keypoints carried onto the depth frame")
    figure.tight_layout()
    return figure, "Depth consistency and depth flags"


def run_figures(stats: RunStatistics, threshold: float, box_threshold: float | None) -> list[tuple[str, Figure, str]]:
    """Every figure of a run: (file stem, figure, title)."""
    joints = per_joint_figures(stats, threshold)
    named = [
        ("detector_score", *score_figure(stats, box_threshold)),
        ("persons_per_frame", *persons_per_frame_figure(stats)),
        ("confidence_per_keypoint", *joints[0]),
        ("uncertainty", *joints[1]),
        ("hard_soft_ratio", *joints[2]),
        ("depth_consistency", *depth_figure(stats)),
    ]
    return named
