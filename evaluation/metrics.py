"""The figures: box AP and keypoint AP (pycocotools), PCK at 0.2 of the ground-truth keypoint
extent (the MVOR protocol), root-relative MPJPE over the 8 upper-body joints, and the fraction of
left/right joint pairs that come out swapped (the top-down failure that mirrors a whole skeleton).

Predictions are dicts: image_id, bbox [x, y, w, h], score, keypoints (K x 3 in the ground
truth's keypoint set), and optionally pose3d (17 x 3 Human3.6M, root-relative mm).
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

from orpose.evaluation.ground_truth import KEYPOINT_SETS
from orpose.evaluation.mvor import truth_3d_by_image
from orpose.frames.geometry import box_iou

__all__ = [
    "box_ap",
    "keypoint_ap",
    "pck",
    "mpjpe_3d",
    "mpjpe_figures",
    "mpjpe_upper_body",
    "upper_body_errors",
    "upper_body_joint_errors",
    "left_right_swaps",
    "UPPER_BODY_COCO",
    "UPPER_BODY_H36M",
]

# shoulders, elbows, wrists, hips (left, right) in COCO-17 and Human3.6M-17 order
UPPER_BODY_COCO = np.array([5, 6, 7, 8, 9, 10, 11, 12])
UPPER_BODY_H36M = np.array([11, 14, 12, 15, 13, 16, 4, 1])


def _coco(dataset: dict):
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = dataset
        coco.createIndex()
    return coco


def _cocoeval(gt: dict, results: list[dict], iou_type: str, sigmas=None) -> dict:
    from pycocotools.cocoeval import COCOeval

    if not results:
        empty = {"AP": 0.0, "AP50": 0.0, "AP75": 0.0, "AR": 0.0}
        return empty | ({"AR1": 0.0, "AR10": 0.0, "AR1_iou50": 0.0, "AR10_iou50": 0.0} if iou_type == "bbox" else {})
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = _coco(gt)
        coco_dt = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, coco_dt, iou_type)
        if sigmas is not None:
            evaluator.params.kpt_oks_sigmas = np.asarray(sigmas)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    s = evaluator.stats
    ar = s[8] if iou_type == "bbox" else s[5]
    figures = {
        "AP": float(max(s[0], 0)),
        "AP50": float(max(s[1], 0)),
        "AP75": float(max(s[2], 0)),
        "AR": float(max(ar, 0)),
    }
    if iou_type == "bbox":
        # AR at 1 and 10 detections per image over IoU 0.50:0.95 (COCO's summary), and at IoU 0.5
        # alone (MVOR's table for boxes from keypoints): recall[iou 0.5, person, all areas, maxDets].
        recall = evaluator.eval["recall"]
        figures.update(
            AR1=float(max(s[6], 0)),
            AR10=float(max(s[7], 0)),
            AR1_iou50=float(max(recall[0, 0, 0, 0], 0)),
            AR10_iou50=float(max(recall[0, 0, 0, 1], 0)),
        )
    return figures


def box_ap(gt: dict, predictions: list[dict]) -> dict:
    results = [
        {"image_id": p["image_id"], "category_id": 1, "bbox": list(map(float, p["bbox"])), "score": float(p["score"])}
        for p in predictions
    ]
    return _cocoeval(gt, results, "bbox")


def keypoint_ap(gt: dict, predictions: list[dict], keypoint_set: str) -> dict:
    """OKS-based AP with the keypoint set's sigmas; box-only ground truth is ignored (COCO's rule)."""
    results = [
        {
            "image_id": p["image_id"],
            "category_id": 1,
            "score": float(p["score"]),
            "keypoints": [float(v) for v in np.asarray(p["keypoints"]).ravel()],
        }
        for p in predictions
    ]
    return _cocoeval(gt, results, "keypoints", KEYPOINT_SETS[keypoint_set][1])


def _by_image(items: list[dict]) -> dict:
    out: dict = {}
    for item in items:
        out.setdefault(item["image_id"], []).append(item)
    return out


def pck(gt: dict, predictions: list[dict], keypoint_set: str, alpha: float = 0.2) -> dict:
    """Fraction of labelled ground-truth keypoints within alpha x max(w, h) of the GT keypoints'
    extent. Persons are paired per image greedily by the number of keypoints they get right; an
    unpaired ground-truth person gets all its keypoints wrong."""
    names = KEYPOINT_SETS[keypoint_set][0]
    correct, total = np.zeros(len(names)), np.zeros(len(names))
    predictions_by_image = _by_image(predictions)
    persons = 0
    for image_id, anns in _by_image([a for a in gt["annotations"] if a.get("num_keypoints", 0) > 0]).items():
        gts = [np.asarray(a["keypoints"], dtype=np.float64).reshape(-1, 3) for a in anns]
        preds = [
            np.asarray(p["keypoints"], dtype=np.float64).reshape(-1, 3) for p in predictions_by_image.get(image_id, [])
        ]
        hits = np.zeros((len(gts), len(preds), len(names)), dtype=bool)
        for g, kg in enumerate(gts):
            seen = kg[:, 2] > 0
            extent = kg[seen, :2].max(0) - kg[seen, :2].min(0)
            threshold = alpha * max(extent.max(), 1.0)
            for p, kp in enumerate(preds):
                hits[g, p] = seen & (np.linalg.norm(kp[:, :2] - kg[:, :2], axis=1) <= threshold)
        scores = hits.sum(-1)
        used_g, used_p = set(), set()
        for flat in np.argsort(-scores, axis=None) if scores.size else []:
            g, p = divmod(int(flat), len(preds))
            if g in used_g or p in used_p:
                continue
            used_g.add(g)
            used_p.add(p)
            correct += hits[g, p]
        for kg in gts:
            total += kg[:, 2] > 0
            persons += 1
    per_joint = {n: (float(c / t) if t else None) for n, c, t in zip(names, correct, total)}
    return {
        "mean": float(correct.sum() / max(total.sum(), 1)),
        "per_joint": per_joint,
        "persons": persons,
        "alpha": alpha,
    }


def _xyxy(boxes: np.ndarray) -> np.ndarray:
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def upper_body_errors(truth_coco: np.ndarray, guess_h36m: np.ndarray) -> np.ndarray:
    """(..., 17, 3) COCO-17 truth and Human3.6M-17 guesses (mm) -> (...) mean joint error over the
    8 upper-body joints, each pose taken relative to the mean of its hips."""
    truth = np.asarray(truth_coco, dtype=np.float64)
    guess = np.asarray(guess_h36m, dtype=np.float64)
    truth = truth[..., UPPER_BODY_COCO, :] - truth[..., [11, 12], :].mean(-2, keepdims=True)
    guess = guess[..., UPPER_BODY_H36M, :] - guess[..., [4, 1], :].mean(-2, keepdims=True)
    return np.linalg.norm(guess - truth, axis=-1).mean(-1)


def upper_body_joint_errors(truth_h36m: np.ndarray, guess_h36m: np.ndarray) -> np.ndarray:
    """(..., 17, 3) Human3.6M-17 truth and guesses (mm) -> (..., 8) error of each upper-body joint, each pose
    taken relative to the mean of its hips."""
    truth = np.asarray(truth_h36m, dtype=np.float64)
    guess = np.asarray(guess_h36m, dtype=np.float64)
    t = truth[..., UPPER_BODY_H36M, :] - truth[..., [4, 1], :].mean(-2, keepdims=True)
    q = guess[..., UPPER_BODY_H36M, :] - guess[..., [4, 1], :].mean(-2, keepdims=True)
    return np.linalg.norm(q - t, axis=-1)


def _pairs_by_box_iou(anns: list[dict], preds: list[dict], min_iou: float):
    """(ground-truth index, prediction index) pairs of one image, greedily by box IoU >= min_iou."""
    if not anns or not preds:
        return
    ious = box_iou(
        _xyxy(np.array([a["bbox"] for a in anns], dtype=np.float64)),
        _xyxy(np.array([p["bbox"] for p in preds], dtype=np.float64)),
    )
    used_g, used_p = set(), set()
    for flat in np.argsort(-ious, axis=None):
        g, p = divmod(int(flat), len(preds))
        if ious[g, p] < min_iou:
            break
        if g in used_g or p in used_p:
            continue
        used_g.add(g)
        used_p.add(p)
        yield g, p


def mpjpe_3d(truth_by_image: dict, predictions: list[dict], min_iou: float = 0.5) -> dict:
    """3D errors of predictions against 3D ground truth (`evaluation.mvor.truth_3d_by_image`).

    Persons are paired per image by box IoU >= min_iou. Two figures, each over the joints both
    sides have (finite), None where nothing could be compared:
    - `mpjpe_upper_body_mm`: root-relative MPJPE over the 8 upper-body joints (shoulders, elbows,
      wrists, hips), root = mean of the hips, from each prediction's `pose3d` (root-relative,
      Human3.6M-17), else its `pose3d_camera`; the papers' 3D figure.
    - `mpjpe_camera_mm`: MPJPE in the camera frame from `pose3d_camera` (17 x 3, mm).
    """
    upper, camera, upper_joints, camera_joints = [], [], 0, 0
    predictions_by_image = _by_image(predictions)
    for image_id, truths in truth_by_image.items():
        preds = predictions_by_image.get(image_id, [])
        for g, p in _pairs_by_box_iou(truths, preds, min_iou):
            truth = np.asarray(truths[g]["joints"], dtype=np.float64).reshape(17, 3)
            pred = preds[p]
            relative = pred.get("pose3d") if pred.get("pose3d") is not None else pred.get("pose3d_camera")
            if relative is not None:
                errors = upper_body_joint_errors(truth, np.asarray(relative, dtype=np.float64).reshape(17, 3))
                if np.isfinite(errors).any():
                    upper.append(float(np.nanmean(errors)))
                    upper_joints += int(np.isfinite(errors).sum())
            if pred.get("pose3d_camera") is not None:
                errors = np.linalg.norm(
                    np.asarray(pred["pose3d_camera"], dtype=np.float64).reshape(17, 3) - truth, axis=1
                )
                if np.isfinite(errors).any():
                    camera.append(float(np.nanmean(errors)))
                    camera_joints += int(np.isfinite(errors).sum())

    def figure(errors: list[float], joints: int) -> dict:
        return {"mean": float(np.mean(errors)) if errors else None, "persons": len(errors), "joints": joints}

    return {"mpjpe_upper_body_mm": figure(upper, upper_joints), "mpjpe_camera_mm": figure(camera, camera_joints)}


def mpjpe_figures(gt: dict, predictions: list[dict], min_iou: float = 0.5) -> dict:
    """`labels evaluate`'s two 3D figures against the ground truth's 3D (`mpjpe_3d`), each None when
    the ground truth or the predictions have no 3D. The upper-body figure is mean and persons."""
    truth = truth_3d_by_image(gt)
    predictions = [p for p in predictions if p.get("pose3d") is not None or p.get("pose3d_camera") is not None]
    if not truth or not predictions:
        return {"mpjpe_upper_body_mm": None, "mpjpe_camera_mm": None}
    figures = mpjpe_3d(truth, predictions, min_iou)
    upper = figures["mpjpe_upper_body_mm"]
    return {
        "mpjpe_upper_body_mm": {"mean": upper["mean"], "persons": upper["persons"]},
        "mpjpe_camera_mm": figures["mpjpe_camera_mm"],
    }


def mpjpe_upper_body(gt: dict, predictions: list[dict], min_iou: float = 0.5) -> dict | None:
    """Root-relative MPJPE (mm) over the 8 upper-body joints (see `mpjpe_3d`); None when the ground
    truth or the predictions have no 3D."""
    return mpjpe_figures(gt, predictions, min_iou)["mpjpe_upper_body_mm"]


def left_right_swaps(
    gt: dict, predictions: list[dict], keypoint_set: str, min_iou: float = 0.5, min_separation: float = 0.1
) -> dict:
    """Fraction of left/right joint pairs (shoulders, elbows, ...) predicted the wrong way round.

    Persons are paired by box IoU. A pair counts when both of its ground-truth joints are labelled
    and lie at least `min_separation` x the person's keypoint extent apart (closer pairs cannot be
    told apart by position); it is swapped when the crossed assignment is closer to the ground truth
    than the straight one. About 0.5 means the model cannot tell a person's left from right.
    """
    names = KEYPOINT_SETS[keypoint_set][0]
    lr = [
        (names.index(n), names.index("right_" + n[5:]))
        for n in names
        if n.startswith("left_") and "right_" + n[5:] in names
    ]
    swapped = counted = 0
    predictions_by_image = _by_image(predictions)
    for image_id, anns in _by_image([a for a in gt["annotations"] if a.get("num_keypoints", 0) > 0]).items():
        preds = predictions_by_image.get(image_id, [])
        for g, p in _pairs_by_box_iou(anns, preds, min_iou):
            truth = np.asarray(anns[g]["keypoints"], dtype=np.float64).reshape(-1, 3)
            guess = np.asarray(preds[p]["keypoints"], dtype=np.float64).reshape(-1, 3)
            seen = truth[:, 2] > 0
            extent = (truth[seen, :2].max(0) - truth[seen, :2].min(0)).max() if seen.any() else 0.0
            for left, right in lr:
                if not (seen[left] and seen[right]):
                    continue
                if np.linalg.norm(truth[left, :2] - truth[right, :2]) < min_separation * extent:
                    continue
                straight = np.linalg.norm(guess[left, :2] - truth[left, :2]) + np.linalg.norm(
                    guess[right, :2] - truth[right, :2]
                )
                crossed = np.linalg.norm(guess[left, :2] - truth[right, :2]) + np.linalg.norm(
                    guess[right, :2] - truth[left, :2]
                )
                counted += 1
                swapped += bool(crossed < straight)
    return {"rate": (swapped / counted) if counted else None, "pairs": counted}
