"""`labels show`: one frame's labels in one picture.

Left: the color frame with each person's box, mask outline, soft skeleton (every keypoint; hollow
markers and dashed limbs where the confidence is at or below the hard threshold) and hard
skeleton (solid). Middle: the depth frame with the keypoints carried onto it (dot = depth
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

from frames.decode import decode_color, decode_depth  # noqa: E402
from frames.sources import depth_counts_to_mm  # noqa: E402
from joints import COCO_SKELETON, H36M_SKELETON  # noqa: E402
from label_store.reader import LabelRun  # noqa: E402
from label_store.schema import DEPTH_HOLE, DEPTH_VALID  # noqa: E402

__all__ = ["show_frame"]


def _draw_skeleton(ax, keypoints, hard, color, threshold):
    for a, b in COCO_SKELETON:
        low = keypoints[a, 2] <= threshold or keypoints[b, 2] <= threshold
        ax.plot(
            keypoints[[a, b], 0],
            keypoints[[a, b], 1],
            color=color,
            linewidth=0.8,
            alpha=0.6,
            linestyle="--" if low else "-",
        )
        if hard[a] and hard[b]:
            ax.plot(keypoints[[a, b], 0], keypoints[[a, b], 1], color=color, linewidth=2.2)
    confident = keypoints[:, 2] > threshold
    ax.scatter(
        keypoints[confident, 0],
        keypoints[confident, 1],
        s=18,
        color=color,
        edgecolors="white",
        linewidths=0.5,
        zorder=3,
    )
    ax.scatter(keypoints[~confident, 0], keypoints[~confident, 1], s=18, facecolors="none", edgecolors=color, zorder=3)


def show_frame(run: LabelRun | str, frame_id: str, out: str | Path) -> Path:
    run = run if isinstance(run, LabelRun) else LabelRun(run)
    labels = run.get(frame_id)
    frame, persons = labels.frame, labels.persons
    thresholds = run.provenance().get("thresholds_json") or {}
    threshold = float(thresholds.get("keypoint_score", 0.35))
    colors = plt.get_cmap("tab10")
    has_depth = bool(frame["depth_path"])
    figure = plt.figure(figsize=(18 if has_depth else 12, 5.2))
    panels = 3 if has_depth else 2
    ax_color = figure.add_subplot(1, panels, 1)
    title = f"{frame_id}: {len(labels)} persons, {int(persons['hard_valid'].sum()) if len(labels) else 0} hard"
    if not labels.labelled:
        title = f"{frame_id}: rejected ({frame['reject_reason']})"
    try:
        color = decode_color(frame["color_path"], frame_id)[:, :, ::-1]
        ax_color.imshow(color)
    except Exception as error:  # noqa: BLE001 - a rejected frame is shown with its reason
        ax_color.text(0.5, 0.5, str(error), ha="center", va="center", wrap=True, transform=ax_color.transAxes)
    ax_color.set_title(title, fontsize=10)
    w, h = (int(v) for v in frame["color_size"])
    for k in range(len(labels)):
        c = colors(k % 10)
        x1, y1, x2, y2 = persons["box"][k]
        ax_color.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=c, linewidth=1.2))
        ax_color.text(x1, y1 - 3, f"{persons['score'][k]:.2f}", color=c, fontsize=7)
        rle = {"size": [h, w], "counts": persons["mask_rle"][k]}
        ax_color.contour(mask_utils.decode(rle), levels=[0.5], colors=[c], linewidths=0.6, alpha=0.7)
        _draw_skeleton(ax_color, persons["keypoints_2d"][k], persons["hard_mask"][k], c, threshold)
    ax_color.set_xlim(0, w)
    ax_color.set_ylim(h, 0)
    ax_color.axis("off")

    if has_depth:
        ax_depth = figure.add_subplot(1, panels, 2)
        try:
            depth = depth_counts_to_mm(decode_depth(frame["depth_path"], frame_id), frame["depth_unit_mm"])
            valid = depth[depth > 0]
            shown = np.ma.masked_equal(depth, 0)
            cmap = plt.get_cmap("turbo").copy()
            cmap.set_bad("black")  # no reading
            image = ax_depth.imshow(
                shown,
                cmap=cmap,
                vmin=np.percentile(valid, 2) if len(valid) else 0,
                vmax=np.percentile(valid, 98) if len(valid) else 1,
            )
            figure.colorbar(image, ax=ax_depth, fraction=0.035, label="depth (mm); black = no reading")
        except Exception as error:  # noqa: BLE001
            ax_depth.text(0.5, 0.5, str(error), ha="center", va="center", wrap=True, transform=ax_depth.transAxes)
        for k in range(len(labels)):
            c = colors(k % 10)
            uv, flag = persons["depth_keypoints"][k], persons["depth_flag"][k]
            for a, b in COCO_SKELETON:
                if flag[a] <= DEPTH_HOLE and flag[b] <= DEPTH_HOLE:
                    ax_depth.plot(uv[[a, b], 0], uv[[a, b], 1], color=c, linewidth=1.0, alpha=0.8)
            ax_depth.scatter(
                uv[flag == DEPTH_VALID, 0],
                uv[flag == DEPTH_VALID, 1],
                s=14,
                color=c,
                edgecolors="white",
                linewidths=0.4,
            )
            ax_depth.scatter(uv[flag == DEPTH_HOLE, 0], uv[flag == DEPTH_HOLE, 1], s=22, color=c, marker="x")
        dw, dh = (int(v) for v in frame["depth_size"])
        ax_depth.set_xlim(0, dw)
        ax_depth.set_ylim(dh, 0)
        ax_depth.set_title("depth frame: labels carried over (x = depth hole)", fontsize=10)
        ax_depth.axis("off")

    ax3d = figure.add_subplot(1, panels, panels, projection="3d")
    anchored = len(labels) and np.isfinite(persons["pose3d_camera"]).all(axis=(1, 2))
    drawn = []
    for k in range(len(labels)):
        c = colors(k % 10)
        if anchored[k]:
            pose = persons["pose3d_camera"][k]
        else:
            pose = persons["pose3d_soft"][k] + [k * 1000.0, 0, 0]
        # camera axes (x right, y down, z forward) drawn with z as depth and -y as up
        for a, b in H36M_SKELETON:
            ax3d.plot(pose[[a, b], 0], pose[[a, b], 2], -pose[[a, b], 1], color=c, linewidth=1.5)
        drawn.append(np.stack([pose[:, 0], pose[:, 2], -pose[:, 1]], axis=1))
    if drawn:  # the same scale on all three axes, or a body looks squashed or lying down
        points = np.concatenate(drawn)
        centre, half = (points.max(0) + points.min(0)) / 2, max((points.max(0) - points.min(0)).max() / 2, 100.0)
        ax3d.set_xlim(centre[0] - half, centre[0] + half)
        ax3d.set_ylim(centre[1] - half, centre[1] + half)
        ax3d.set_zlim(centre[2] - half, centre[2] + half)
        ax3d.set_box_aspect((1, 1, 1))
    ax3d.set_xlabel("x (mm)")
    ax3d.set_ylabel("depth z (mm)")
    ax3d.set_zlabel("up (mm)")
    ax3d.set_title(
        "3D: camera frame where depth anchored it"
        if len(labels) and anchored.any()
        else "3D: root-relative (no depth anchor)",
        fontsize=10,
    )
    figure.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out
