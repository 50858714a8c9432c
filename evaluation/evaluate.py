"""`labels evaluate`: a run, or any detector's COCO results file, against annotated ground truth.

Figures: COCO box AP/AR (with AR at IoU 0.5, MVOR's table for boxes from keypoints), keypoint AP
(OKS), PCK@0.2 (this project's pairing) and PCK@0.2 in MVOR's protocol (`evaluation.mvor`),
left/right swaps, and 3D MPJPE (root-relative upper body, and camera frame) where the ground truth
has 3D (the generator's `keypoints_3d` or MVOR's `annotations3D`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from orpose.evaluation.ground_truth import coco17_to_set, load_ground_truth
from orpose.evaluation.metrics import box_ap, keypoint_ap, left_right_swaps, mpjpe_figures, pck
from orpose.evaluation.mvor import MVOR_GROUPS, pck_mvor
from orpose.label_store.reader import LabelRun

__all__ = ["evaluate", "predictions_from_run", "predictions_from_results", "format_report"]


def predictions_from_run(
    run: LabelRun | str | Path, gt: dict, keypoint_set: str, label_set: str = "soft"
) -> list[dict]:
    """A run's persons as predictions on the ground truth's images (matched by frame_id where the
    ground truth has them, else by the end of the color path); frames not in the ground truth are
    left out."""
    run = run if isinstance(run, LabelRun) else LabelRun(run)
    by_frame = {im["frame_id"]: im["id"] for im in gt["images"] if "frame_id" in im}
    # Ground truth that names its frames (the generator's) is matched by frame id alone: another
    # frame of the run that reads the same color file (a second rig over the same camera) is not
    # that image's. Otherwise (MVOR) the color path ends with the image's file_name.
    by_file = [] if by_frame else [(im["file_name"], im["id"]) for im in gt["images"]]
    predictions = []
    # frame ids: only the ground truth's frames are read (index order, each shard once); file names: every frame
    for labels in run.select(by_frame) if by_frame else run:
        image_id = by_frame.get(labels.frame_id)
        if image_id is None:
            image_id = next((i for name, i in by_file if labels.frame["color_path"].endswith(name)), None)
        if image_id is None or not labels.labelled:
            continue
        p = labels.persons
        keep = p["hard_valid"] if label_set == "hard" else np.ones(len(labels), bool)
        keypoints = p["keypoints_2d"].astype(np.float64).copy()
        if label_set == "hard":
            keypoints[~p["hard_mask"], 2] = 0.0
        converted = coco17_to_set(keypoints, keypoint_set)
        pose = p["pose3d_hard"] if label_set == "hard" else p["pose3d_soft"]
        for k in np.flatnonzero(keep):
            x1, y1, x2, y2 = (float(v) for v in p["box"][k])
            predictions.append(
                {
                    "image_id": image_id,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(p["score"][k]),
                    "keypoints": converted[k],
                    "keypoints_coco17": keypoints[k],
                    "pose3d": pose[k],
                    "pose3d_camera": p["pose3d_camera"][k],
                }
            )
    return predictions


def _pose(value: Any, path: str | Path, n: int, name: str) -> np.ndarray | None:
    """A 17 x 3 pose of a results entry (null or NaN for joints it lacks), or None when absent."""
    if value is None:
        return None
    try:
        pose = np.array([[np.nan if v is None else v for v in joint] for joint in value], dtype=np.float64)
    except (TypeError, ValueError):
        pose = np.empty(0)
    if pose.shape != (17, 3):
        raise ValueError(f"{path}: result {n}: field {name!r} must be 17 x 3 (Human3.6M-17, mm), got {np.shape(value)}")
    return pose


def predictions_from_results(path: str | Path, keypoint_set: str) -> list[dict]:
    """A COCO results file (any detector's): bbox, score and keypoints per entry.

    Keypoints: `coco_keypoints` (17 x 3, as MVOR's released OpenPose files carry beside their
    10-joint `keypoints`), else `keypoints` as COCO-17, else `keypoints` in the ground truth's own
    set (e.g. MVOR's 10 joints). Optional `pose3d` (root-relative) and `pose3d_camera` (camera
    frame), each 17 x 3 in Human3.6M-17 order, millimetres, null or NaN for joints it lacks.
    """
    try:
        results = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"results file not found: {path}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(results, list):
        raise ValueError(f"{path}: a COCO results file is a JSON list")
    own_joints = {"coco17": 17, "mvor10": 10}[keypoint_set]
    predictions = []
    for n, r in enumerate(results):
        if not isinstance(r, dict) or "image_id" not in r or "score" not in r:
            raise ValueError(f"{path}: result {n} lacks image_id or score")
        coco = r.get("coco_keypoints")
        given = r.get("keypoints") if coco is None else coco
        keypoints = np.asarray(given if given is not None else [0] * 51, dtype=np.float64).reshape(-1, 3)
        if coco is not None and len(keypoints) != 17:
            raise ValueError(f"{path}: result {n}: field 'coco_keypoints' has {len(keypoints)} keypoints, not 17")
        if len(keypoints) == 17:
            coco17, converted = keypoints, coco17_to_set(keypoints[None], keypoint_set)[0]
        elif len(keypoints) == own_joints:
            coco17, converted = None, keypoints
        else:
            raise ValueError(
                f"{path}: result {n} has {len(keypoints)} keypoints; results must be COCO-17 "
                f"(or carry 'coco_keypoints'), or the ground truth's own {own_joints}"
            )
        bbox = r.get("bbox")
        if bbox is None:  # keypoint-only results: their extent, as pycocotools does
            x0, y0 = keypoints[:, :2].min(0)
            x1, y1 = keypoints[:, :2].max(0)
            bbox = [x0, y0, x1 - x0, y1 - y0]
        predictions.append(
            {
                "image_id": r["image_id"],
                "bbox": list(map(float, bbox)),
                "score": float(r["score"]),
                "keypoints": converted,
                "keypoints_coco17": coco17,
                "pose3d": _pose(r.get("pose3d"), path, n, "pose3d"),
                "pose3d_camera": _pose(r.get("pose3d_camera"), path, n, "pose3d_camera"),
            }
        )
    return predictions


def evaluate(
    gt_path: str | Path, run: str | Path | None = None, results: str | Path | None = None, label_set: str = "soft"
) -> dict:
    if (run is None) == (results is None):
        raise ValueError("evaluate a run or a results file (one of them)")
    gt, keypoint_set, repairs = load_ground_truth(gt_path)
    if run is not None:
        predictions = predictions_from_run(run, gt, keypoint_set, label_set)
    elif results is not None:
        predictions = predictions_from_results(results, keypoint_set)
    return {
        "ground_truth": str(gt_path),
        "keypoint_set": keypoint_set,
        "repairs": repairs,
        "images": len(gt["images"]),
        "gt_persons": len(gt["annotations"]),
        "predictions": len(predictions),
        "box": box_ap(gt, predictions),
        "keypoints": keypoint_ap(gt, predictions, keypoint_set),
        "pck": pck(gt, predictions, keypoint_set),
        "pck_mvor": pck_mvor(gt, predictions, keypoint_set),
        "left_right_swaps": left_right_swaps(gt, predictions, keypoint_set),
        **mpjpe_figures(gt, predictions),
    }


def format_report(figures: dict) -> str:
    lines = [
        f"ground truth: {figures['ground_truth']} ({figures['images']} images, {figures['gt_persons']} persons, "
        f"keypoints {figures['keypoint_set']}); {figures['predictions']} predicted persons"
    ]
    lines += [f"  repaired: {r}" for r in figures["repairs"]]
    b, k, p = figures["box"], figures["keypoints"], figures["pck"]
    lines.append(
        f"box AP {b['AP']:.3f}  AP50 {b['AP50']:.3f}  AP75 {b['AP75']:.3f}  "
        f"AR1 {b['AR1']:.3f}  AR10 {b['AR10']:.3f}  AR100 {b['AR']:.3f}"
    )
    lines.append(f"box at IoU 0.5: AP50 {b['AP50']:.3f}  AR1 {b['AR1_iou50']:.3f}  AR10 {b['AR10_iou50']:.3f}")
    lines.append(f"keypoint AP (OKS) {k['AP']:.3f}  AP50 {k['AP50']:.3f}  AP75 {k['AP75']:.3f}  AR {k['AR']:.3f}")
    lines.append(
        f"PCK@{p['alpha']} {p['mean']:.3f} over {p['persons']} persons: "
        + ", ".join(f"{name} {v:.2f}" for name, v in p["per_joint"].items() if v is not None)
    )
    m = figures["pck_mvor"]
    lines.append(
        "PCK@0.2 (MVOR protocol): "
        + "  ".join(f"{name} {m[name]:.1f}" for name in (*MVOR_GROUPS, "mean"))
        + f"  ({m['persons']} persons)"
    )
    swaps = figures.get("left_right_swaps")
    if swaps and swaps["rate"] is not None:
        lines.append(
            f"left/right swapped: {100 * swaps['rate']:.1f} % of {swaps['pairs']} labelled left/right joint pairs "
            "(about 50 % = left and right not told apart)"
        )
    for key, name in (
        ("mpjpe_upper_body_mm", "MPJPE upper body (root-relative)"),
        ("mpjpe_camera_mm", "MPJPE camera frame"),
    ):
        m = figures.get(key)
        if m is None:
            lines.append(f"{name}: no 3D ground truth or no 3D predictions")
        elif m["mean"] is None:
            lines.append(f"{name}: no person matched")
        else:
            lines.append(f"{name}: {m['mean']:.1f} mm over {m['persons']} persons")
    return "\n".join(lines)
