"""`labels diff`: compare two runs."""

from __future__ import annotations

import argparse

# The tolerances with an option of their own (--keypoint-px, ...); the rest come from --tolerances-of or the defaults.
TOLERANCE_OPTIONS = (
    "keypoint_px",
    "confidence",
    "box_px",
    "pose3d_mm",
    "added",
    "removed",
    "score",
    "mask_iou",
    "bias_px",
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "diff",
        help="compare two runs person by person; exit 1 past the tolerances",
        description="Match persons of two runs (or a run and a reference JSON) by box IoU per "
        "frame and compare every stored field: boxes, scores, masks, keypoints and their spread, "
        "the hard set, the soft, hard and camera-frame 3D poses, the depth-grid labels; NaN must "
        "match NaN in place. Report added and removed persons, displacement quantiles, a consistent "
        "shift, and every change past the tolerances (exit 1 if any).",
    )
    parser.add_argument("a", help="run, shard or reference JSON (the baseline)")
    parser.add_argument("b", help="run, shard or reference JSON (the candidate)")
    parser.add_argument("--keypoint-px", type=float, default=None, help="largest keypoint displacement (default 1 px)")
    parser.add_argument("--box-px", type=float, default=None, help="largest box corner displacement (default 1 px)")
    parser.add_argument("--confidence", type=float, default=None, help="largest confidence change (default 0.02)")
    parser.add_argument(
        "--pose3d-mm",
        type=float,
        default=None,
        help="largest 3D joint change of the soft, hard and camera-frame poses (default 5 mm)",
    )
    parser.add_argument("--score", type=float, default=None, help="largest detector score change (default 0.02)")
    parser.add_argument(
        "--mask-iou", type=float, default=None, help="smallest IoU of a matched person's masks (default 0.9)"
    )
    parser.add_argument(
        "--bias-px",
        type=float,
        default=None,
        help="largest mean signed shift of boxes or keypoints over the whole run (default 0.1 px)",
    )
    parser.add_argument("--added", type=int, default=None, help="persons allowed to appear per frame (default 0)")
    parser.add_argument("--removed", type=int, default=None, help="persons allowed to disappear per frame (default 0)")
    parser.add_argument(
        "--tolerances-of",
        metavar="DEVICE:PRECISION",
        help="start from the tolerances measured for two runs that differ only in device, precision or a speed "
        "lever: cpu:fp32, cuda:fp32, cpu:bf16, cuda:bf16, cuda:fp16 (docs/benchmarks.md, 'Each lever against "
        "fp32'); reduced precision bounds the median and 90th percentile of the changes and the share of flags that "
        "changed, not the largest change; the options above override single tolerances",
    )
    parser.add_argument("--min-iou", type=float, default=0.5, help="box IoU that matches two persons (default 0.5)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (it goes to stderr)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import sys

    from orpose.label_store.compare import Tolerances, compare, tolerances_for

    base = Tolerances()
    if args.tolerances_of:
        device, _, precision = args.tolerances_of.partition(":")
        try:
            base = tolerances_for(device, precision)
        except ValueError as error:
            print(f"labels diff: --tolerances-of {args.tolerances_of}: {error}", file=sys.stderr)
            return 2
    given = {name: getattr(args, name) for name in TOLERANCE_OPTIONS if getattr(args, name) is not None}
    tolerances = dataclasses.replace(base, **given)
    result = compare(args.a, args.b, tolerances, args.min_iou, progress=not args.no_progress)
    print("\n".join(result.lines()))
    print("within tolerances" if result.ok else f"{result.problems.total} change(s) past the tolerances")
    return 0 if result.ok else 1
