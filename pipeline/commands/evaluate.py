"""`labels evaluate`: score a run against ground truth."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "evaluate",
        help="box AP, keypoint AP, PCK@0.2, left/right swaps and upper-body MPJPE against ground truth",
        description="Evaluate a run, or any detector's COCO results file, against COCO-style ground "
        "truth (MVOR's file and its quirks included): box AP and AR (AR1, AR10, AR100; AP50, AR1 and "
        "AR10 at IoU 0.5), keypoint AP by OKS, PCK at 0.2 of the ground-truth keypoint extent, PCK@0.2 "
        "in MVOR's own protocol (head, shoulder, hip, elbow, wrist, mean), the fraction of left/right "
        "joint pairs predicted the wrong way round (about 50 percent = the model cannot tell a person's "
        "left from right), and, when the ground truth has 3D (the generator's keypoints_3d or MVOR's "
        "annotations3D), root-relative MPJPE over the 8 upper-body joints and MPJPE in the camera frame. "
        "README 'Labelling MVOR' lists the MVOR figures this reproduces.",
    )
    parser.add_argument("run", nargs="?", help="run directory or shard file")
    parser.add_argument(
        "--results",
        help="COCO results file instead of a run (COCO-17 keypoints, or coco_keypoints beside "
        "MVOR's 10; optional pose3d / pose3d_camera, 17 x 3 Human3.6M mm)",
    )
    parser.add_argument("--gt", required=True, help="ground-truth COCO file")
    parser.add_argument("--hard", action="store_true", help="evaluate the hard label set (default: soft)")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the figures")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from orpose.evaluation.evaluate import evaluate, format_report

    if (args.run is None) == (args.results is None):
        print("labels evaluate: give a run or --results, not both", file=sys.stderr)
        return 2
    figures = evaluate(args.gt, run=args.run, results=args.results, label_set="hard" if args.hard else "soft")
    print(json.dumps(figures) if args.json else format_report(figures))
    return 0
