"""Loading COCO-style ground truth as it is found in the wild, MVOR's included.

Quirks survived (each is a real file's): annotation ids that are not unique (re-numbered),
`category_id` as the string "1", no `area` (taken from the mask, else the box) and no `iscrowd`
(0), persons with a box only (no keypoints: kept for box AP, ignored by keypoint metrics), and
keypoint sets other than COCO-17 (MVOR's 10 upper-body joints), named by `keypoint_set`.
3D ground truth: per annotation `keypoints_3d` (17 x 3 COCO order, camera mm, the generator's
format), or MVOR's separate `annotations3D` list (kept as it is; `evaluation.mvor` reads it).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np

from orpose.joints import COCO_KEYPOINTS, COCO_SIGMAS, MVOR_JOINTS

__all__ = ["load_ground_truth", "KEYPOINT_SETS", "coco17_to_set"]

_NOSE, _LEYE, _REYE, _LEAR, _REAR, _LSH, _RSH = 0, 1, 2, 3, 4, 5, 6


def _coco_to_mvor(keypoints: np.ndarray) -> np.ndarray:
    """(N, 17, 3) COCO keypoints (x, y, score) -> (N, 10, 3) MVOR joints, by the MVOR authors' rule
    (their `eval_pck_2dpose.py`): head = mid-eyes, else mid-ears, else the nose, else the right
    eye, left eye, right ear, left ear; neck = mid-shoulders, else the right, else the left
    shoulder. A keypoint is missing when its score is 0 or it sits at (0, 0) (OpenPose's and
    COCO's "not found"); a missing joint comes out as (0, 0, 0). A midpoint's score is the lower."""
    keypoints = np.asarray(keypoints, dtype=np.float64).reshape(-1, 17, 3)
    out = np.zeros((len(keypoints), 10, 3))
    for n, k in enumerate(keypoints):
        seen = (k[:, 2] > 0) & ~((k[:, 0] == 0) & (k[:, 1] == 0))

        def mid(a, b):
            return np.array([(k[a, 0] + k[b, 0]) / 2, (k[a, 1] + k[b, 1]) / 2, min(k[a, 2], k[b, 2])])

        if seen[_LEYE] and seen[_REYE]:
            head = mid(_LEYE, _REYE)
        elif seen[_LEAR] and seen[_REAR]:
            head = mid(_LEAR, _REAR)
        else:
            head = next((k[j] for j in (_NOSE, _REYE, _LEYE, _REAR, _LEAR) if seen[j]), np.zeros(3))
        if seen[_LSH] and seen[_RSH]:
            neck = mid(_LSH, _RSH)
        else:
            neck = next((k[j] for j in (_RSH, _LSH) if seen[j]), np.zeros(3))
        out[n, 0], out[n, 1] = head, neck
        for m, name in enumerate(MVOR_JOINTS[2:], start=2):
            j = COCO_KEYPOINTS.index(name)
            out[n, m] = k[j] if seen[j] else 0.0
    return out


KEYPOINT_SETS = {
    # name: (joint names, OKS sigmas, conversion from COCO-17 predictions)
    "coco17": (COCO_KEYPOINTS, COCO_SIGMAS, lambda k: np.asarray(k, dtype=np.float64).reshape(-1, 17, 3)),
    "mvor10": (
        MVOR_JOINTS,
        np.array([0.025, 0.079] + [COCO_SIGMAS[COCO_KEYPOINTS.index(n)] for n in MVOR_JOINTS[2:]]),
        _coco_to_mvor,
    ),
}


def coco17_to_set(keypoints: np.ndarray, keypoint_set: str) -> np.ndarray:
    return KEYPOINT_SETS[keypoint_set][2](keypoints)


def _mask_area(segmentation, height: int, width: int) -> float | None:
    from pycocotools import mask as mask_utils

    if not segmentation:
        return None
    if isinstance(segmentation, dict):
        rle = (
            segmentation
            if isinstance(segmentation.get("counts"), str)
            else mask_utils.frPyObjects(segmentation, height, width)
        )
    else:
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    return float(mask_utils.area(rle))


def load_ground_truth(path: str | Path) -> tuple[dict, str, list[str]]:
    """A cleaned COCO dataset dict, its keypoint set name, and the repairs made (readable)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"ground truth not found: {path}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{path}: field {key!r} is missing or not a list")
    data = copy.deepcopy(data)
    repairs: list[str] = []
    images = {im["id"]: im for im in data["images"]}
    ids = [a.get("id") for a in data["annotations"]]
    if len(set(ids)) != len(ids) or None in ids:
        repairs.append(f"annotation ids re-numbered ({len(ids) - len(set(ids))} duplicates)")
        for n, a in enumerate(data["annotations"], start=1):
            a["id"] = n
    strings = sum(isinstance(a.get("category_id"), str) for a in data["annotations"])
    if strings:
        repairs.append(f"{strings} string category ids made integers")
    areas = crowds = box_only = 0
    lengths = set()
    for a in data["annotations"]:
        a["category_id"] = int(a.get("category_id", 1))
        if "iscrowd" not in a:
            a["iscrowd"] = 0
            crowds += 1
        if "area" not in a:
            image = images.get(a["image_id"], {})
            area = _mask_area(a.get("segmentation"), image.get("height", 0), image.get("width", 0))
            a["area"] = area if area else float(a["bbox"][2] * a["bbox"][3])
            areas += 1
        keypoints = a.get("keypoints") or []
        if not keypoints or a.get("only_bbox"):
            a["keypoints"] = []
            a["num_keypoints"] = 0
            box_only += 1
        else:
            lengths.add(len(keypoints))
            a["num_keypoints"] = int(np.sum(np.asarray(keypoints).reshape(-1, 3)[:, 2] > 0))
    if crowds:
        repairs.append(f"{crowds} annotations without iscrowd (set to 0)")
    if areas:
        repairs.append(f"{areas} annotations without area (from mask or box)")
    if box_only:
        repairs.append(f"{box_only} box-only persons (kept for box AP only)")
    if len(lengths) > 1:
        raise ValueError(f"{path}: annotations mix keypoint counts {sorted(n // 3 for n in lengths)}")
    joints = (lengths.pop() // 3) if lengths else 17
    keypoint_set = {17: "coco17", 10: "mvor10"}.get(joints)
    if keypoint_set is None:
        raise ValueError(f"{path}: {joints} keypoints per person; known sets: coco17 (17), mvor10 (10)")
    n_joints = len(KEYPOINT_SETS[keypoint_set][0])
    for a in data["annotations"]:
        if not a["keypoints"]:
            a["keypoints"] = [0] * (3 * n_joints)
    data.setdefault("categories", [{"id": 1, "name": "person"}])
    for c in data["categories"]:
        c["id"] = int(c["id"])
    return data, keypoint_set, repairs
