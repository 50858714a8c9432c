"""MVOR's evaluation protocols: PCK@0.2 as its authors' script computes it, and 3D ground truth.

PCK (`pck_mvor`), the rule of MVOR's `eval_pck_2dpose.py` (reproduces the published tables to the
printed digit from the released result files; `tests/evaluation/test_mvor.py`):
- Ground truth: persons with keypoints (`only_bbox` 0) in MVOR's 10 joints (COCO-17 ground truth
  is converted by the same rule as predictions); a point at (0, 0) is missing.
- Predictions: COCO-17 keypoints become the 10 MVOR joints (`evaluation.ground_truth`'s
  `coco17_to_set(..., "mvor10")`, the authors' rule); a point at (0, 0) is missing.
- Matching, per ground-truth person: among the image's predictions whose extent (of their COCO-17
  points) overlaps the person's extent (of its points) by more than 0.3 of the ground-truth
  extent's area, the highest-scoring one; extents are pixel-inclusive (+1). Not exclusive: two
  persons may take the same prediction. As in the script, the chosen one is the image's *first*
  prediction whose score lies within 1e-6 of that best score.
- A joint is correct within 0.2 x max(extent width, height) (+1); missing in the prediction or in
  the ground truth counts as wrong; a person without an overlapping prediction gets all wrong.
- Per joint, the fraction over all ground-truth persons; left and right averaged, head with neck;
  reported in percent for head, shoulder, hip, elbow, wrist and their mean.

3D (`truth_3d_by_image`): MVOR's `annotations3D` give 12 joints (x, y, z, v) in millimetres in
camera 1's frame, whatever `ref_camera` says. Measured by reprojection onto the 2D annotations
(`tests/frames/test_mvor.py`): joints 0-9 are MVOR's 10 joints in their 2D order (head, neck, left
and right shoulder, hip, elbow, wrist; median errors 7-12 px); 10 and 11 lie near the left and
right wrist (17-18 px from them: the hands) and are not evaluated. Each pose is moved into every
view's camera with the file's rig and laid out as Human3.6M-17 (NaN where MVOR has no such joint):
head -> head, neck -> thorax (both the middle of the shoulders), the 8 limb joints to theirs.
"""

from __future__ import annotations

import numpy as np

from orpose.evaluation.ground_truth import coco17_to_set
from orpose.frames.mvor import read_mvor_rig
from orpose.joints import H36M_JOINTS, MVOR_JOINTS, coco_to_h36m_positions

__all__ = ["pck_mvor", "truth_3d_by_image", "MVOR_GROUPS", "MVOR3D_TO_H36M"]

MVOR_GROUPS = ("head", "shoulder", "hip", "elbow", "wrist")  # head = head and neck, the others left and right
# MVOR 3D joint index -> Human3.6M-17 index: the 10 joints both sets have (10 and 11, the hands, are not in H36M).
MVOR3D_TO_H36M = {0: H36M_JOINTS.index("head"), 1: H36M_JOINTS.index("thorax")} | {
    j: H36M_JOINTS.index(name) for j, name in enumerate(MVOR_JOINTS) if j >= 2
}
_OVERLAP = 0.3  # fraction of the ground-truth extent a prediction's extent must cover
_TIE = 1e-6  # scores this close count as the same (the script's rule)


def _points(keypoints) -> np.ndarray:
    """(K, 3) keypoints -> (K, 2) positions, NaN where the point is (0, 0) (MVOR's "missing")."""
    k = np.asarray(keypoints, dtype=np.float64).reshape(-1, 3)[:, :2].copy()
    k[(k[:, 0] == 0) & (k[:, 1] == 0)] = np.nan
    return k


def _extent(points: np.ndarray) -> np.ndarray:
    """[x1, y1, x2, y2] of the present points (NaN when none is)."""
    if np.isnan(points[:, 0]).all():
        return np.full(4, np.nan)
    return np.array(
        [np.nanmin(points[:, 0]), np.nanmin(points[:, 1]), np.nanmax(points[:, 0]), np.nanmax(points[:, 1])]
    )


def _best_overlapping(gt_box: np.ndarray, extents: np.ndarray, scores: np.ndarray) -> int | None:
    """Index of the prediction the script takes for a ground-truth extent, or None."""
    if not len(extents):
        return None
    area = (gt_box[2] - gt_box[0] + 1) * (gt_box[3] - gt_box[1] + 1)
    with np.errstate(invalid="ignore"):
        w = np.minimum(gt_box[2], extents[:, 2]) - np.maximum(gt_box[0], extents[:, 0]) + 1
        h = np.minimum(gt_box[3], extents[:, 3]) - np.maximum(gt_box[1], extents[:, 1]) + 1
        overlap = np.clip(w, 0, None) * np.clip(h, 0, None) / area
        candidates = np.flatnonzero(overlap > _OVERLAP)
    if not len(candidates):
        return None
    best = scores[candidates].max()
    return int(np.flatnonzero(np.abs(scores - best) < _TIE)[0])


def pck_mvor(gt: dict, predictions: list[dict], keypoint_set: str, alpha: float = 0.2) -> dict:
    """PCK@alpha in MVOR's protocol (module docstring). Percent per group and their mean.

    Predictions: dicts with image_id, score, `keypoints` in the ground truth's set and, where
    known, `keypoints_coco17` (17 x 3), whose extent the matching uses (else `keypoints`').
    """
    by_image: dict = {}
    for p in predictions:
        by_image.setdefault(p["image_id"], []).append(p)
    correct = np.zeros(len(MVOR_JOINTS))
    persons = 0
    for a in gt["annotations"]:
        if a.get("only_bbox") or not a.get("num_keypoints"):
            continue
        truth = np.asarray(a["keypoints"], dtype=np.float64).reshape(-1, 3)
        truth = _points(truth if keypoint_set == "mvor10" else coco17_to_set(truth[None], "mvor10")[0])
        if np.isnan(truth[:, 0]).all():
            continue
        persons += 1
        preds = by_image.get(a["image_id"], [])
        coco = [
            p.get("keypoints_coco17")
            if p.get("keypoints_coco17") is not None
            else (p["keypoints"] if keypoint_set == "coco17" else None)
            for p in preds
        ]
        extents = np.array([_extent(_points(p["keypoints"] if c is None else c)) for p, c in zip(preds, coco)])
        box = _extent(truth)
        chosen = _best_overlapping(box, extents.reshape(-1, 4), np.array([float(p["score"]) for p in preds]))
        if chosen is None:
            continue
        c = coco[chosen]
        guess = _points(
            preds[chosen]["keypoints"]
            if c is None
            else coco17_to_set(np.asarray(c, dtype=np.float64).reshape(1, 17, 3), "mvor10")[0]
        )
        scale = max(box[2] - box[0] + 1, box[3] - box[1] + 1)
        distance = np.linalg.norm(guess - truth, axis=1)
        correct += np.nan_to_num(distance, nan=np.inf) <= alpha * scale
    per_joint = correct / max(persons, 1)
    paired = (per_joint + per_joint[[1, 0, 3, 2, 5, 4, 7, 6, 9, 8]]) / 2
    groups = dict(zip(MVOR_GROUPS, paired[[0, 2, 4, 6, 8]]))
    mean = float(np.mean(list(groups.values())))
    result = {name: round(100 * float(v), 1) for name, v in groups.items()}
    result.update(
        mean=round(100 * mean, 1),
        persons=persons,
        alpha=alpha,
        per_joint={name: float(v) for name, v in zip(MVOR_JOINTS, per_joint)},
    )
    return result


def truth_3d_by_image(gt: dict) -> dict[int, list[dict]]:
    """3D ground truth per image: [{"bbox": [x, y, w, h], "joints": (17, 3) Human3.6M layout in
    that image's camera frame, mm, NaN where unknown}].

    Sources: MVOR's `annotations3D` moved into each view with the file's rig (box: the person's
    2D annotation in that view; views without one are left out), or per-annotation
    `keypoints_3d` (17 x 3 COCO, camera mm: the generator's format). Empty when there is neither.
    """
    truth: dict[int, list[dict]] = {}
    for a in gt["annotations"]:
        if a.get("keypoints_3d"):
            joints = coco_to_h36m_positions(np.asarray(a["keypoints_3d"], dtype=np.float64).reshape(17, 3))
            truth.setdefault(a["image_id"], []).append({"bbox": a["bbox"], "joints": joints})
    poses = gt.get("annotations3D") or []
    if not poses:
        return truth
    rig = read_mvor_rig(gt)
    cameras = {im["id"]: f"cam{int(im['cam_id'])}" for im in gt["images"] if "cam_id" in im}
    boxes = {(a["image_id"], a.get("person_id")): a["bbox"] for a in gt["annotations"]}
    for pose in poses:
        joints = np.asarray(pose["keypoints3D"], dtype=np.float64).reshape(-1, 4)
        present = (joints[:, 3] > 0) & (joints[:, 2] > 0)  # 5 heads of the real file sit at z = 0: not annotated
        for image_id in (int(i) for i in str(pose["image_ids"]).split("_")):
            box = boxes.get((image_id, pose.get("person_id")))
            if box is None or image_id not in cameras:
                continue
            moved = rig.move(joints[:, :3], rig.reference, cameras[image_id])
            h36m = np.full((17, 3), np.nan)
            for j, h in MVOR3D_TO_H36M.items():
                if present[j]:
                    h36m[h] = moved[j]
            truth.setdefault(image_id, []).append({"bbox": box, "joints": h36m})
    return truth
