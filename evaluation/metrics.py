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

from evaluation.ground_truth import KEYPOINT_SETS
from teachers.tta import box_iou

__all__ = ["box_ap", "keypoint_ap", "pck", "mpjpe_upper_body", "upper_body_errors", "left_right_swaps", "UPPER_BODY_COCO",
           "UPPER_BODY_H36M"]

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
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0, "AR": 0.0}
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
    return {"AP": float(max(s[0], 0)), "AP50": float(max(s[1], 0)), "AP75": float(max(s[2], 0)), "AR": float(max(ar, 0))}


def box_ap(gt: dict, predictions: list[dict]) -> dict:
    results = [{"image_id": p["image_id"], "category_id": 1, "bbox": list(map(float, p["bbox"])), "score": float(p["score"])}
               for p in predictions]
    return _cocoeval(gt, results, "bbox")


def keypoint_ap(gt: dict, predictions: list[dict], keypoint_set: str) -> dict:
    """OKS-based AP with the keypoint set's sigmas; box-only ground truth is ignored (COCO's rule)."""
    results = [{"image_id": p["image_id"], "category_id": 1, "score": float(p["score"]),
                "keypoints": [float(v) for v in np.asarray(p["keypoints"]).ravel()]} for p in predictions]
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
        preds = [np.asarray(p["keypoints"], dtype=np.float64).reshape(-1, 3) for p in predictions_by_image.get(image_id, [])]
        hits = np.zeros((len(gts), len(preds), len(names)), dtype=bool)
        for g, kg in enumerate(gts):
            seen = kg[:, 2] > 0
            extent = kg[seen, :2].max(0) - kg[seen, :2].min(0)
            threshold = alpha * max(extent.max(), 1.0)
            for p, kp in enumerate(preds):
                hits[g, p] = seen & (np.linalg.norm(kp[:, :2] - kg[:, :2], axis=1) <= threshold)
        scores = hits.sum(-1)
        used_g, used_p = set(), set()
        for flat in (np.argsort(-scores, axis=None) if scores.size else []):
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
    return {"mean": float(correct.sum() / max(total.sum(), 1)), "per_joint": per_joint, "persons": persons, "alpha": alpha}


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


def _pairs_by_box_iou(anns: list[dict], preds: list[dict], min_iou: float):
    """(ground-truth index, prediction index) pairs of one image, greedily by box IoU >= min_iou."""
    if not anns or not preds:
        return
    ious = box_iou(_xyxy(np.array([a["bbox"] for a in anns], dtype=np.float64)),
                   _xyxy(np.array([p["bbox"] for p in preds], dtype=np.float64)))
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


def mpjpe_upper_body(gt: dict, predictions: list[dict], min_iou: float = 0.5) -> dict | None:
    """Root-relative MPJPE (mm) over the 8 upper-body joints, root = mean of the hips; persons
    paired per image by box IoU. None when the ground truth or the predictions have no 3D."""
    with_3d = [a for a in gt["annotations"] if a.get("keypoints_3d")]
    predictions = [p for p in predictions if p.get("pose3d") is not None]
    if not with_3d or not predictions:
        return None
    errors = []
    predictions_by_image = _by_image(predictions)
    for image_id, anns in _by_image(with_3d).items():
        preds = predictions_by_image.get(image_id, [])
        for g, p in _pairs_by_box_iou(anns, preds, min_iou):
            errors.append(float(upper_body_errors(np.reshape(anns[g]["keypoints_3d"], (17, 3)),
                                                  np.reshape(preds[p]["pose3d"], (17, 3)))))
    if not errors:
        return {"mean": None, "persons": 0}
    return {"mean": float(np.mean(errors)), "persons": len(errors)}


def left_right_swaps(gt: dict, predictions: list[dict], keypoint_set: str, min_iou: float = 0.5,
                     min_separation: float = 0.1) -> dict:
    """Fraction of left/right joint pairs (shoulders, elbows, ...) predicted the wrong way round.

    Persons are paired by box IoU. A pair counts when both of its ground-truth joints are labelled
    and lie at least `min_separation` x the person's keypoint extent apart (closer pairs cannot be
    told apart by position); it is swapped when the crossed assignment is closer to the ground truth
    than the straight one. About 0.5 means the model cannot tell a person's left from right.
    """
    names = KEYPOINT_SETS[keypoint_set][0]
    lr = [(names.index(n), names.index("right_" + n[5:])) for n in names
          if n.startswith("left_") and "right_" + n[5:] in names]
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
                straight = (np.linalg.norm(guess[left, :2] - truth[left, :2])
                            + np.linalg.norm(guess[right, :2] - truth[right, :2]))
                crossed = (np.linalg.norm(guess[left, :2] - truth[right, :2])
                           + np.linalg.norm(guess[right, :2] - truth[left, :2]))
                counted += 1
                swapped += bool(crossed < straight)
    return {"rate": (swapped / counted) if counted else None, "pairs": counted}
