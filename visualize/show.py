"""`labels show`: one frame's labels in one picture.

Left: the color frame with each person's box and mask outline (in the person's color), soft
skeleton (every keypoint; hollow markers and dashed limbs where the confidence is at or below the
hard threshold) and hard skeleton (thick); limbs and joints blue on the left, orange on the right
(`visualize.drawing`). Middle: the depth frame with the keypoints carried onto it (dot = depth
reading, x = depth hole). Right: the 3D poses, in the camera frame where depth anchored them
(else root-relative, spread along x).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from pycocotools import mask as mask_utils  # noqa: E402

from orpose.frames.decode import decode_color, decode_depth  # noqa: E402
from orpose.frames.sources import depth_counts_to_mm  # noqa: E402
from orpose.label_store.reader import LabelRun  # noqa: E402
from orpose.visualize.drawing import (  # noqa: E402
    SIDE_COLORS,
    draw_depth_keypoints,
    draw_skeleton_2d,
    draw_skeleton_3d,
    person_color,
)

__all__ = ["show_frame"]


def _color_panel(ax, run: LabelRun, labels, frame_id: str) -> None:
    """The colour frame with boxes, scores, mask outlines and 2D skeletons (hard keypoints solid)."""
    frame, persons = labels.frame, labels.persons
    thresholds = run.provenance().get("thresholds_json") or {}
    threshold = float(thresholds.get("keypoint_score", 0.35))
    title = f"{frame_id}: {len(labels)} persons, {int(persons['hard_valid'].sum()) if len(labels) else 0} hard"
    if not labels.labelled:
        title = f"{frame_id}: rejected ({frame['reject_reason']})"
    try:
        ax.imshow(decode_color(frame["color_path"], frame_id)[:, :, ::-1])
    except Exception as error:  # noqa: BLE001 - a rejected frame is shown with its reason
        ax.text(0.5, 0.5, str(error), ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set_title(title, fontsize=10)
    w, h = (int(v) for v in frame["color_size"])
    for k in range(len(labels)):
        c = person_color(k)
        x1, y1, x2, y2 = persons["box"][k]
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=c, linewidth=1.2))
        ax.text(x1, y1 - 3, f"{persons['score'][k]:.2f}", color=c, fontsize=7)
        rle = {"size": [h, w], "counts": persons["mask_rle"][k]}
        ax.contour(mask_utils.decode(rle), levels=[0.5], colors=[c], linewidths=0.6, alpha=0.7)
        draw_skeleton_2d(ax, persons["keypoints_2d"][k], persons["hard_mask"][k], threshold)
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.axis("off")


def _depth_panel(figure, ax, labels, frame_id: str) -> None:
    """The registered depth frame in millimetres, holes black, with the keypoints carried onto it."""
    frame, persons = labels.frame, labels.persons
    try:
        depth = depth_counts_to_mm(decode_depth(frame["depth_path"], frame_id), frame["depth_unit_mm"])
        valid = depth[depth > 0]
        cmap = plt.get_cmap("turbo").copy()
        cmap.set_bad("black")  # no reading
        image = ax.imshow(
            np.ma.masked_equal(depth, 0),
            cmap=cmap,
            vmin=np.percentile(valid, 2) if len(valid) else 0,
            vmax=np.percentile(valid, 98) if len(valid) else 1,
        )
        figure.colorbar(image, ax=ax, fraction=0.035, label="depth (mm); black = no reading")
    except Exception as error:  # noqa: BLE001
        ax.text(0.5, 0.5, str(error), ha="center", va="center", wrap=True, transform=ax.transAxes)
    for k in range(len(labels)):
        draw_depth_keypoints(ax, persons["depth_keypoints"][k], persons["depth_flag"][k])
    dw, dh = (int(v) for v in frame["depth_size"])
    ax.set_xlim(0, dw)
    ax.set_ylim(dh, 0)
    ax.set_title("depth frame: labels carried over (x = depth hole)", fontsize=10)
    ax.axis("off")


def _pose3d_panel(ax, labels) -> None:
    """3D skeletons: in the camera frame where depth anchored them, else root-relative side by side."""
    persons = labels.persons
    anchored = len(labels) and np.isfinite(persons["pose3d_camera"]).all(axis=(1, 2))
    drawn = []
    for k in range(len(labels)):
        pose = persons["pose3d_camera"][k] if anchored[k] else persons["pose3d_soft"][k] + [k * 1000.0, 0, 0]
        drawn.append(draw_skeleton_3d(ax, pose))
    if drawn:  # the same scale on all three axes, or a body looks squashed or lying down
        points = np.concatenate(drawn)
        centre, half = (points.max(0) + points.min(0)) / 2, max((points.max(0) - points.min(0)).max() / 2, 100.0)
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
        ax.set_zlim(centre[2] - half, centre[2] + half)
        ax.set_box_aspect((1, 1, 1))
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("depth z (mm)")
    ax.set_zlabel("up (mm)")
    ax.set_title(
        "3D: camera frame where depth anchored it"
        if len(labels) and anchored.any()
        else "3D: root-relative (no depth anchor)",
        fontsize=10,
    )


def show_frame(run: LabelRun | str, frame_id: str, out: str | Path) -> Path:
    """Draw one frame's labels (colour, depth when the run has it, 3D) into the PNG `out`; returns its path."""
    run = run if isinstance(run, LabelRun) else LabelRun(run)
    labels = run.get(frame_id)
    has_depth = bool(labels.frame["depth_path"])
    figure = plt.figure(figsize=(18 if has_depth else 12, 5.2))
    panels = 3 if has_depth else 2
    _color_panel(figure.add_subplot(1, panels, 1), run, labels, frame_id)
    if has_depth:
        _depth_panel(figure, figure.add_subplot(1, panels, 2), labels, frame_id)
    _pose3d_panel(figure.add_subplot(1, panels, panels, projection="3d"), labels)
    figure.legend(
        handles=[plt.Line2D([], [], color=c, linewidth=2.4, label=f"{side} side") for side, c in SIDE_COLORS.items()],
        loc="lower center",
        ncol=3,
        fontsize=8,
        frameon=False,
    )
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out
