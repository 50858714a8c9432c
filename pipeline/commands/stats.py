"""`labels stats`: the figures of a run's statistics, streamed shard by shard."""

from __future__ import annotations

import argparse

from orpose.pipeline.commands.common import add_out


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "stats",
        help="plots of a whole run: score, persons per frame, confidence, hard share, TTA spread, depth consistency",
        description="Write PNG plots of a run into a folder: detector_score, persons_per_frame, "
        "confidence_per_keypoint, uncertainty (TTA spread per joint), hard_soft_ratio (each joint's share of the "
        "hard set) and depth_consistency, the figures of `labels report`. One pass over the shards with a "
        "progress bar; memory does not grow with the run (fixed-bin histograms).",
    )
    parser.add_argument("path", help="run directory or shard file")
    add_out(parser, "folder for the PNG files")
    parser.add_argument(
        "--sample", type=int, help="per-joint distributions from N shards drawn at random; counts from the index"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample's draw (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar while reading shards")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orpose.visualize.stats import write_stats

    for path in write_stats(args.path, args.out, progress=not args.no_progress, sample=args.sample, seed=args.seed):
        print(f"wrote {path}")
    return 0
