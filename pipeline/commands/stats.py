"""`labels stats`: statistics of a run, streamed shard by shard."""

from __future__ import annotations

import argparse

from orpose.pipeline.commands.common import add_out


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "stats",
        help="plots of a whole run: confidences, persons per frame, hard/soft, uncertainty, depth consistency",
        description="Write PNG plots of a run into a folder.",
    )
    parser.add_argument("path", help="run directory or shard file")
    add_out(parser, "folder for the PNG files")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orpose.visualize.stats import write_stats

    for path in write_stats(args.path, args.out):
        print(f"wrote {path}")
    return 0
