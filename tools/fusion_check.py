"""Multi-view fusion measured on synthetic rigs (issue 44): a run of a synthetic scene filmed by several cameras
(`labels synth --cameras 3`, then `labels run`), its frames grouped into instants by their timestamps
(`orpose.fusion.instants`), its persons associated across the views of each instant
(`orpose.fusion.association`) and their soft 2D keypoints triangulated (`orpose.fusion.triangulation`), against
the generator's ground truth, beside the single-view 3D of the same persons (`pose3d_camera`: the lifter's pose
anchored by depth). Usage:

    labels synth --out /tmp/fuse/data --frames 24 --cameras 3 --seed 4400 --no-calibrated-depth
    labels run --config tiny --frames /tmp/fuse/data/manifest.jsonl --out /tmp/fuse/run --executor local
    .venv/bin/python tools/fusion_check.py /tmp/fuse/run /tmp/fuse/data/annotations.json

Prints, per number of views in a person's group: persons, MPJPE in the camera frame (absolute, mm) and
root-relative (pelvis subtracted), fused and single-view, over Human3.6M-17 (both sides converted from COCO-17
by the same rule); and the association's accuracy against the ground truth's person ids.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from orpose.frames.calibration import load_calibration, rig_from_calibration
from orpose.frames.errors import CalibrationError
from orpose.frames.geometry import apply_rigid
from orpose.frames.mvor import read_mvor_rig
from orpose.fusion.association import associate
from orpose.fusion.instants import group_instants
from orpose.fusion.triangulation import ViewCamera, triangulate
from orpose.joints import coco_to_h36m_positions
from orpose.label_store.compare import _pairs as match_boxes  # labels diff's person matching
from orpose.label_store.reader import LabelRun
from orpose.label_store.schema import STATUS_LABELLED


def mpjpe(a: np.ndarray, b: np.ndarray, root_relative: bool) -> float:
    if root_relative:
        a, b = a - a[0], b - b[0]
    ok = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    return float(np.linalg.norm(a[ok] - b[ok], axis=1).mean()) if ok.any() else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("annotations", help="the generator's annotations.json (ground truth and instants)")
    parser.add_argument(
        "--calibration",
        help="calibration.json with every camera's pose (default: the one beside the annotations; without it the "
        "annotations' MVOR camera tables)",
    )
    parser.add_argument("--outlier-px", type=float, default=20.0)
    parser.add_argument("--max-disagreement-px", type=float, default=25.0)
    args = parser.parse_args()
    gt = json.loads(open(args.annotations).read())
    calibration = Path(args.calibration or Path(args.annotations).with_name("calibration.json"))
    try:  # keyed by the frames' camera ids (day1/cam1), as the pipeline reads it
        rig = rig_from_calibration(load_calibration(calibration), calibration)
    except CalibrationError as error:  # no file, or one written before the poses: the MVOR tables (cam1, ...)
        print(f"{error}: the rig comes from the annotations' MVOR camera tables")
        rig = read_mvor_rig(gt)
        rig = dataclasses.replace(
            rig,
            intrinsics={f"day1/{c}": v for c, v in rig.intrinsics.items()},
            camera_to_reference={f"day1/{c}": v for c, v in rig.camera_to_reference.items()},
            reference=f"day1/{rig.reference}",
        )
    cameras = {c: ViewCamera(rig.intrinsics[c], np.linalg.inv(rig.camera_to_reference[c])) for c in rig.intrinsics}
    images = {im["id"]: im for im in gt["images"]}
    truth = defaultdict(list)
    for a in gt["annotations"]:
        truth[images[a["image_id"]]["frame_id"]].append(a)
    run = LabelRun(args.run)
    rows = defaultdict(lambda: defaultdict(list))  # views in group -> measure -> values
    groups_total = groups_pure = 0
    seen_twice = together = 0
    # the instants from the run's own timestamps and cameras (fusion.instants), as a run without ground truth has
    frame_ids, stamps, camera_ids = [], [], []
    for labels in run:
        frame_ids.append(labels.frame_id)
        stamps.append(labels.frame["timestamp"])
        camera_ids.append(labels.frame["camera_id"])
    instants = group_instants(stamps, camera_ids)
    for instant in range(int(instants.max()) + 1 if len(instants) else 0):
        frames = [run.get(f) for f, i in zip(frame_ids, instants) if i == instant]
        frames = [f for f in frames if f.frame["status"] == STATUS_LABELLED]
        view_cameras = [cameras[f.frame["camera_id"]] for f in frames]
        keypoints = [f.persons["keypoints_2d"] for f in frames]
        # each labelled person's ground-truth person (box IoU >= 0.5, best first)
        identity = {}
        for v, f in enumerate(frames):
            annotations = truth[f.frame_id]
            if not len(f) or not annotations:
                continue
            boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in annotations)])
            for p, g in match_boxes(f.persons["box"], boxes, 0.5):  # greedy, best IoU first, one to one
                identity[(v, p)] = (g, annotations[g])
        groups = associate(keypoints, view_cameras, args.max_disagreement_px)
        ids_in_views = defaultdict(set)
        for (v, _), (_, a) in identity.items():
            ids_in_views[a["person_id"]].add(v)
        for group in groups:
            persons = {identity[m][1]["person_id"] for m in group if m in identity}
            groups_total += 1
            groups_pure += len(persons) <= 1
        for person_id, views in ids_in_views.items():
            if len(views) >= 2:
                seen_twice += 1
                members = {m for m, (_, a) in identity.items() if a["person_id"] == person_id}
                together += any(members <= set(group) for group in groups)
        for group in groups:
            if len(group) < 2:
                continue
            uv = np.full((len(frames), 17, 2), np.nan)
            confidence = np.zeros((len(frames), 17))
            for v, p in group:
                uv[v], confidence[v] = keypoints[v][p, :, :2], keypoints[v][p, :, 2]
            fused = triangulate(uv, confidence, view_cameras, outlier_px=args.outlier_px)
            for v, p in group:
                if (v, p) not in identity:
                    continue
                annotation = identity[(v, p)][1]
                true = coco_to_h36m_positions(np.asarray(annotation["keypoints_3d"], np.float64).reshape(17, 3))
                here = coco_to_h36m_positions(apply_rigid(view_cameras[v].world_to_camera, fused.points))
                single = frames[v].persons["pose3d_camera"][p].astype(np.float64)
                row = rows[len(group)]
                row["fused"].append(mpjpe(here, true, False))
                row["single"].append(mpjpe(single, true, False))
                row["fused_rr"].append(mpjpe(here, true, True))
                row["single_rr"].append(mpjpe(single, true, True))
    print(f"{args.run}: association: {groups_pure}/{groups_total} groups hold one ground-truth person; "
          f"{together}/{seen_twice} persons seen by 2+ views grouped together")  # fmt: skip
    print("views | persons | MPJPE camera frame: fused / single-view (x) | root-relative: fused / single-view (x)")
    for views in sorted(rows):
        r = {k: np.nanmean(v) for k, v in rows[views].items()}
        print(f"{views:5d} | {len(rows[views]['fused']):7d} | {r['fused']:6.1f} / {r['single']:6.1f} mm "
              f"({r['single'] / r['fused']:.1f}x) | {r['fused_rr']:6.1f} / {r['single_rr']:6.1f} mm "
              f"({r['single_rr'] / r['fused_rr']:.1f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
