"""`labels bench-feed`: how fast the labels feed a student, against decoding the images alone."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bench-feed",
        help="the student readers (stream, map-style) against the decode-only limit, side by side",
        description="Read a run's training items three ways with the same DataLoader workers: decoding and "
        "resizing the images only, in a random order (the limit), PoseLabelStream, and PoseLabelDataset through "
        "a shuffling sampler, read interleaved in turns. Prints items/s and each one's ratio to the limit (and "
        "its spread over the turns), the time to the first batch, "
        "the workers' summed PSS and the bytes they read per item, and the shuffle's quality (consecutive "
        "items from one shard, against a full random permutation). --replicate N first copies the run's "
        "frames into a run of N frames (kept with --keep, reused when there).",
    )
    parser.add_argument("run", help="run directory (labelled frames whose images are on this machine)")
    parser.add_argument("--replicate", type=int, help="measure on a copy of the run grown to N frames")
    parser.add_argument("--shard-size", type=int, default=256, help="shard size of the copy (default 256)")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (default 2)")
    parser.add_argument("--factor", default="8", help="down-sampling factor: a number or 'random' (default 8)")
    parser.add_argument("--modality", choices=("color", "depth"), default="color")
    parser.add_argument("--items", type=int, default=2000, help="items read per loader (default 2000)")
    parser.add_argument(
        "--batch-size",
        type=int,
        help="DataLoader batches of this many items, collated in the workers (collate_poses; the limit's images "
        "stacked); default: one item at a time (batch_size=None)",
    )
    parser.add_argument("--buffer", type=int, help="the stream's shuffle buffer (default: its default)")
    parser.add_argument("--loaders", default="minimal,limit,stream,map", help="which loaders, comma-separated")
    parser.add_argument(
        "--turn",
        type=int,
        default=60,
        help="batches a loader reads in one turn: the loaders are read interleaved, turn by turn, so that a slow "
        "spell of a shared machine weighs on all alike (default 60)",
    )
    parser.add_argument("--keep", help="work folder to keep (the replicated run); default a temporary one")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orpose.pipeline.feed_bench import bench_feed

    factor = args.factor if args.factor == "random" else float(args.factor)
    lines = bench_feed(
        args.run,
        replicate=args.replicate,
        shard_size=args.shard_size,
        workers=args.workers,
        factor=factor,
        modality=args.modality,
        items=args.items,
        buffer_size=args.buffer,
        keep=args.keep,
        loaders=tuple(name.strip() for name in args.loaders.split(",") if name.strip()),
        batch_size=args.batch_size,
        turn_batches=args.turn,
    )
    print("\n".join(lines))
    return 0
