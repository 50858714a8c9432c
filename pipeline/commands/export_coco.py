"""`labels export-coco`: COCO keypoint results from a run."""

from __future__ import annotations

import argparse

from orpose.pipeline.commands.common import add_out


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "export-coco",
        help="write a run's labels as COCO keypoint results (and an image list)",
        description="Write the labels of a run (or one shard) as a COCO keypoint results file that pycocotools' "
        "loadRes reads, and FILE.images.json with the image list. See docs/label_format.md.",
    )
    parser.add_argument("run", help="run directory or shard file")
    add_out(parser, "results file to write")
    parser.add_argument("--hard", action="store_true", help="export the hard set (hard skeletons, hard keypoints)")
    parser.add_argument("--image-ids", help="ground-truth COCO file whose image ids to use (matched by frame_id)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (it goes to stderr)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orpose.label_store.export import export_coco

    counts = export_coco(
        args.run, args.out, "hard" if args.hard else "soft", args.image_ids, progress=not args.no_progress
    )
    print(f"wrote {counts['results']} person results for {counts['images']} images to {args.out}")
    return 0
