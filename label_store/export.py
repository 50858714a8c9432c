"""`labels export-coco`: a run's labels as COCO keypoint results that pycocotools loads.

Writes FILE (a list of results: image_id, category_id 1, bbox [x, y, w, h], score, keypoints as
17 x (x, y, confidence)) and FILE with `.images.json` (an image list: id, file_name, width,
height, frame_id). Image ids follow the run's frame order from 1, or come from a ground-truth
file (`image_ids_from`) matched by `frame_id`, else by file name. Both files are written as the run
is read, shard by shard: memory does not grow with the run.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from orpose.label_store.reader import LabelRun

__all__ = ["export_coco"]


def _ids_from_ground_truth(path: str | Path) -> dict[str, int]:
    gt = json.loads(Path(path).read_text())
    ids = {}
    for image in gt.get("images", []):
        if "frame_id" in image:
            ids[image["frame_id"]] = image["id"]
        ids.setdefault(f"file:{image['file_name']}", image["id"])
    return ids


def export_coco(
    run: LabelRun | str,
    out: str | Path,
    label_set: str = "soft",
    image_ids_from: str | Path | None = None,
    progress: bool = False,
) -> dict:
    """Returns counts {images, results}. label_set 'hard': only hard skeletons, hard keypoints
    keep their confidence and the others get confidence 0 at their position."""
    if label_set not in ("soft", "hard"):
        raise ValueError(f"label_set must be 'soft' or 'hard', got {label_set!r}")
    run = run if isinstance(run, LabelRun) else LabelRun(run)
    known = _ids_from_ground_truth(image_ids_from) if image_ids_from else None
    out = Path(out)
    images, results = 0, 0
    with out.open("w") as results_file, Path(str(out) + ".images.json").open("w") as images_file:
        results_file.write("[")
        images_file.write('{"images": [')
        frames = iter(run)
        if progress:  # tqdm comes with the teacher extra
            from tqdm import tqdm

            frames = tqdm(frames, total=len(run), desc="export-coco", unit="frame")
        for number, labels in enumerate(frames, start=1):
            frame = labels.frame
            if known is not None:
                image_id = known.get(frame["frame_id"])
                if image_id is None:
                    image_id = next(
                        (v for k, v in known.items() if k.startswith("file:") and frame["color_path"].endswith(k[5:])),
                        None,
                    )
                if image_id is None:
                    continue  # not in the ground truth
            else:
                image_id = number
            image = {
                "id": image_id,
                "file_name": frame["color_path"],
                "width": int(frame["color_size"][0]),
                "height": int(frame["color_size"][1]),
                "frame_id": frame["frame_id"],
            }
            images_file.write((",\n " if images else "\n ") + json.dumps(image))
            images += 1
            p = labels.persons
            for k in range(len(labels)):
                if label_set == "hard" and not p["hard_valid"][k]:
                    continue
                keypoints = p["keypoints_2d"][k].astype(np.float64).copy()
                if label_set == "hard":
                    keypoints[~p["hard_mask"][k], 2] = 0.0
                x1, y1, x2, y2 = (float(v) for v in p["box"][k])
                result = {
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(p["score"][k]),
                    "keypoints": [round(float(v), 3) for v in keypoints.ravel()],
                }
                results_file.write((", " if results else "") + json.dumps(result))
                results += 1
        results_file.write("]\n")
        categories = [{"id": 1, "name": "person", "supercategory": "person"}]
        images_file.write(f'\n], "categories": {json.dumps(categories)}}}\n')
    return {"images": images, "results": results}
