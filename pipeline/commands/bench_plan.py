"""`labels bench-plan`: plan a large synthetic source without labelling it."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bench-plan",
        help="what planning a source of N frames costs the driver: time and peak memory, fresh and on resume",
        description="Write a synthetic manifest of N frames (image paths that need not exist), then run "
        "`labels run --plan-only` on it in a process of its own: a fresh plan, then a resume after the first "
        "--committed fraction of the shards were marked committed. Prints wall time and peak resident memory "
        "(process tree) of each, and what starting Python with the driver's imports costs alone.",
        epilog="example:\n  labels bench-plan --frames 10000000 --keep /tmp/plan10m",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--frames", type=int, default=1_000_000, help="frames in the manifest (default 1,000,000)")
    parser.add_argument(
        "--committed", type=float, default=0.9, help="fraction of shards marked committed for the resume (0.9)"
    )
    parser.add_argument("--keep", help="work folder to keep and reuse (the manifest is written once per N)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orpose.pipeline.bench_plan import bench_plan

    print("\n".join(bench_plan(args.frames, args.keep, args.committed)))
    return 0
