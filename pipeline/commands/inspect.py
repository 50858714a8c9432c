"""`labels inspect`: counts, confidence quantiles and provenance of a run."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "inspect",
        help="what a run or shard holds: counts, scores, confidences, rejects, provenance (from its index)",
        description="Frames, rejected frames by reason, persons (soft, hard, per frame), the quantiles of the "
        "detector's score and of each person's mean keypoint confidence, each joint's share of the hard set and "
        "the provenance of a run directory or one shard. Read from the run index alone (seconds on millions of "
        "frames); --per-joint adds each joint's confidence quantiles, which takes one pass over every shard.",
    )
    parser.add_argument("path", help="run directory or shard file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--per-joint", action="store_true", help="each joint's confidence quantiles (reads every shard once)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (it goes to stderr)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from orpose.label_store.inspection import format_inspection, inspect_labels

    info = inspect_labels(args.path, per_joint=args.per_joint, progress=not args.no_progress)
    print(json.dumps(info, indent=1) if args.json else format_inspection(info))
    return 0
