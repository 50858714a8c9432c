"""`labels evaluate`: a run, or any detector's COCO results file, against annotated ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from evaluation.ground_truth import coco17_to_set, load_ground_truth
from evaluation.metrics import box_ap, keypoint_ap, left_right_swaps, mpjpe_upper_body, pck
from label_store.reader import LabelRun

__all__ = ["evaluate", "predictions_from_run", "predictions_from_results", "format_report"]


def predictions_from_run(run: LabelRun | str, gt: dict, keypoint_set: str, label_set: str = "soft") -> list[dict]:
    """A run's persons as predictions on the ground truth's images (matched by frame_id, else by
    the end of the color path); frames not in the ground truth are left out."""
    run = run if isinstance(run, LabelRun) else LabelRun(run)
    by_frame = {im["frame_id"]: im["id"] for im in gt["images"] if "frame_id" in im}
    by_file = [(im["file_name"], im["id"]) for im in gt["images"]]
    predictions = []
    for labels in run:
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
            predictions.append({"image_id": image_id, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(p["score"][k]),
                                "keypoints": converted[k], "pose3d": pose[k]})
    return predictions


def predictions_from_results(path: str | Path, keypoint_set: str) -> list[dict]:
    """A COCO results file (any detector's): bbox, score and COCO-17 keypoints per entry."""
    results = json.loads(Path(path).read_text())
    if not isinstance(results, list):
        raise ValueError(f"{path}: a COCO results file is a JSON list")
    predictions = []
    for n, r in enumerate(results):
        if "image_id" not in r or "score" not in r:
            raise ValueError(f"{path}: result {n} lacks image_id or score")
        keypoints = np.asarray(r.get("keypoints", [0] * 51), dtype=np.float64).reshape(-1, 3)
        if len(keypoints) != 17:
            raise ValueError(f"{path}: result {n} has {len(keypoints)} keypoints; results must be COCO-17")
        bbox = r.get("bbox")
        if bbox is None:  # keypoint-only results: their extent, as pycocotools does
            x0, y0 = keypoints[:, :2].min(0)
            x1, y1 = keypoints[:, :2].max(0)
            bbox = [x0, y0, x1 - x0, y1 - y0]
        predictions.append({"image_id": r["image_id"], "bbox": list(map(float, bbox)), "score": float(r["score"]),
                            "keypoints": coco17_to_set(keypoints[None], keypoint_set)[0], "pose3d": r.get("pose3d")})
    return predictions


def evaluate(gt_path: str | Path, run: str | Path | None = None, results: str | Path | None = None,
             label_set: str = "soft") -> dict:
    if (run is None) == (results is None):
        raise ValueError("evaluate a run or a results file (one of them)")
    gt, keypoint_set, repairs = load_ground_truth(gt_path)
    predictions = (predictions_from_run(run, gt, keypoint_set, label_set) if run is not None
                   else predictions_from_results(results, keypoint_set))
    return {
        "ground_truth": str(gt_path), "keypoint_set": keypoint_set, "repairs": repairs,
        "images": len(gt["images"]), "gt_persons": len(gt["annotations"]), "predictions": len(predictions),
        "box": box_ap(gt, predictions),
        "keypoints": keypoint_ap(gt, predictions, keypoint_set),
        "pck": pck(gt, predictions, keypoint_set),
        "left_right_swaps": left_right_swaps(gt, predictions, keypoint_set),
        "mpjpe_upper_body_mm": mpjpe_upper_body(gt, predictions),
    }


def format_report(figures: dict) -> str:
    lines = [f"ground truth: {figures['ground_truth']} ({figures['images']} images, {figures['gt_persons']} persons, "
             f"keypoints {figures['keypoint_set']}); {figures['predictions']} predicted persons"]
    lines += [f"  repaired: {r}" for r in figures["repairs"]]
    b, k, p = figures["box"], figures["keypoints"], figures["pck"]
    lines.append(f"box AP {b['AP']:.3f}  AP50 {b['AP50']:.3f}  AP75 {b['AP75']:.3f}  AR {b['AR']:.3f}")
    lines.append(f"keypoint AP (OKS) {k['AP']:.3f}  AP50 {k['AP50']:.3f}  AP75 {k['AP75']:.3f}  AR {k['AR']:.3f}")
    lines.append(f"PCK@{p['alpha']} {p['mean']:.3f} over {p['persons']} persons: " + ", ".join(
        f"{name} {v:.2f}" for name, v in p["per_joint"].items() if v is not None))
    swaps = figures.get("left_right_swaps")
    if swaps and swaps["rate"] is not None:
        lines.append(f"left/right swapped: {100 * swaps['rate']:.1f} % of {swaps['pairs']} labelled left/right joint pairs "
                     "(about 50 % = left and right not told apart)")
    m = figures["mpjpe_upper_body_mm"]
    if m is None:
        lines.append("MPJPE upper body: no 3D ground truth or no 3D predictions")
    elif m["mean"] is None:
        lines.append("MPJPE upper body: no person matched")
    else:
        lines.append(f"MPJPE upper body: {m['mean']:.1f} mm over {m['persons']} persons")
    return "\n".join(lines)
