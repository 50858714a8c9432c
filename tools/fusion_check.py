"""Multi-view fusion measured on synthetic rigs (issue 44): a run of a synthetic scene filmed by several cameras
(`labels synth --cameras 3`), labelled with `fusion.enabled=true` so that the pipeline groups the frames into
instants, associates the persons across the views of each instant and triangulates them (`stages.fuse`), against
the generator's ground truth: the run's `pose3d_room_camera` (the fused 3D in each view's camera frame) beside the
single-view 3D of the same persons (`pose3d_camera`: the lifter's pose anchored by depth). Usage:

    labels synth --out /tmp/fuse/data --frames 24 --cameras 3 --seed 4400 --no-calibrated-depth
    labels run --config tiny --frames /tmp/fuse/data/manifest.jsonl --out /tmp/fuse/run --executor local \
        fusion.enabled=true
    .venv/bin/python tools/fusion_check.py /tmp/fuse/run /tmp/fuse/data/annotations.json

Prints, per number of views in a person's group: persons, MPJPE in the camera frame (absolute, mm) and
root-relative (pelvis subtracted), fused and single-view, over Human3.6M-17 (both sides converted from COCO-17
by the same rule); and the association's accuracy against the ground truth's person ids.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np

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
    parser.add_argument("run", help="a run labelled with fusion.enabled=true")
    parser.add_argument("annotations", help="the generator's annotations.json (ground truth)")
    args = parser.parse_args()
    gt = json.loads(open(args.annotations).read())
    images = {im["id"]: im for im in gt["images"]}
    truth = defaultdict(list)
    for a in gt["annotations"]:
        truth[images[a["image_id"]]["frame_id"]].append(a)
    run = LabelRun(args.run)
    by_instant = defaultdict(list)
    for labels in run:
        if labels.frame["status"] == STATUS_LABELLED:
            by_instant[int(labels.frame["instant"])].append(labels)
    if -1 in by_instant:
        raise SystemExit(f"{args.run}: frames without an instant: label the run with fusion.enabled=true")
    rows = defaultdict(lambda: defaultdict(list))  # views in group -> measure -> values
    joints = defaultdict(list)  # "all", "hard": each fused COCO joint's error against the ground truth, mm
    groups_total = groups_pure = 0
    seen_twice = together = 0
    for frames in by_instant.values():
        # each labelled person's ground-truth person (box IoU >= 0.5, best first)
        identity = {}
        for v, f in enumerate(frames):
            annotations = truth[f.frame_id]
            if not len(f) or not annotations:
                continue
            boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in annotations)])
            for p, g in match_boxes(f.persons["box"], boxes, 0.5):  # greedy, best IoU first, one to one
                identity[(v, p)] = annotations[g]
        members = defaultdict(list)  # the run's groups (fusion_group), and every unfused person alone
        for v, f in enumerate(frames):
            for p, number in enumerate(f.persons["fusion_group"]):
                members[int(number) if number >= 0 else ("alone", v, p)].append((v, p))
        groups = list(members.values())
        ids_in_views = defaultdict(set)
        for (v, _), a in identity.items():
            ids_in_views[a["person_id"]].add(v)
        for group in groups:
            groups_total += 1
            groups_pure += len({identity[m]["person_id"] for m in group if m in identity}) <= 1
        for person_id, views in ids_in_views.items():
            if len(views) >= 2:
                seen_twice += 1
                mine = {m for m, a in identity.items() if a["person_id"] == person_id}
                together += any(mine <= set(group) for group in groups)
        for group in groups:
            if len(group) < 2:
                continue
            for v, p in group:
                if (v, p) not in identity:
                    continue
                true = coco_to_h36m_positions(np.asarray(identity[(v, p)]["keypoints_3d"], np.float64).reshape(17, 3))
                here = coco_to_h36m_positions(frames[v].persons["pose3d_room_camera"][p].astype(np.float64))
                single = frames[v].persons["pose3d_camera"][p].astype(np.float64)
                row = rows[len(group)]
                row["fused"].append(mpjpe(here, true, False))
                row["single"].append(mpjpe(single, true, False))
                row["fused_rr"].append(mpjpe(here, true, True))
                row["single_rr"].append(mpjpe(single, true, True))
                coco_truth = np.asarray(identity[(v, p)]["keypoints_3d"], np.float64).reshape(17, 3)
                errors = np.linalg.norm(frames[v].persons["pose3d_room_camera"][p] - coco_truth, axis=1)
                joints["all"] += errors[np.isfinite(errors)].tolist()
                joints["hard"] += errors[frames[v].persons["pose3d_room_hard"][p] & np.isfinite(errors)].tolist()
    print(f"{args.run}: association: {groups_pure}/{groups_total} groups hold one ground-truth person; "
          f"{together}/{seen_twice} persons seen by 2+ views grouped together")  # fmt: skip
    print("views | persons | MPJPE camera frame: fused / single-view (x) | root-relative: fused / single-view (x)")
    for views in sorted(rows):
        r = {k: np.nanmean(v) for k, v in rows[views].items()}
        m = {k: np.nanmedian(v) for k, v in rows[views].items()}
        print(f"{views:5d} | {len(rows[views]['fused']):7d} | {r['fused']:6.1f} / {r['single']:6.1f} mm "
              f"({r['single'] / r['fused']:.1f}x) | {r['fused_rr']:6.1f} / {r['single_rr']:6.1f} mm "
              f"({r['single_rr'] / r['fused_rr']:.1f}x)")  # fmt: skip
        print(f"      | median of the persons' MPJPE: {m['fused']:6.1f} / {m['single']:6.1f} mm "
              f"({m['single'] / m['fused']:.1f}x) | {m['fused_rr']:6.1f} / {m['single_rr']:6.1f} mm "
              f"({m['single_rr'] / m['fused_rr']:.1f}x)")  # fmt: skip
    if joints["all"]:
        every, hard = np.array(joints["all"]), np.array(joints["hard"])
        print(f"fused joints (COCO-17, camera frame): {len(every)}, median {np.median(every):.1f} mm, q90 "
              f"{np.quantile(every, 0.9):.1f} mm; hard ({100 * len(hard) / len(every):.0f} %): median "
              f"{np.median(hard):.1f} mm, q90 {np.quantile(hard, 0.9):.1f} mm")  # fmt: skip


if __name__ == "__main__":
    main()
