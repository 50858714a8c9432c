"""`labels report`: one HTML page about a run."""

from __future__ import annotations

import argparse

from orpose.pipeline.commands.common import add_out


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "report",
        help="one self-contained HTML page about a run: checks, provenance, counts, rejects, plots, gallery",
        description="Write OUT/index.html, a page that opens in any browser without a server or network "
        "(styles inline, pictures embedded): a summary of checks (can I train on this run?), provenance "
        "(teacher, checkpoints with sha256, thresholds, TTA, code and package versions), frames, persons and "
        "hard/soft counts per day and camera, rejected frames with reasons and details, distributions "
        "(detector score, keypoint confidence and TTA spread per joint, persons per frame, hard share per "
        "joint, depth consistency), the result of `labels verify`, the figures of `labels evaluate` for the "
        "soft and hard sets when --gt is given, and a gallery of the least confident persons, color crop "
        "beside depth crop. Statistics are streamed one shard at a time: memory stays bounded on runs of "
        "any size. With --sample N, counts, scores, hard shares and the gallery come from the run's index and "
        "the distributions and verify from N shards drawn with --seed: the same time on any run's size.",
        epilog="example:\n  labels report runs/tiny-sample --gt data/sample/annotations.json "
        "-o runs/tiny-sample/report",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run", help="run directory or shard file")
    add_out(parser, "folder for index.html (created)")
    parser.add_argument("--gt", help="COCO-style ground truth (the generator's annotations.json, MVOR's file)")
    parser.add_argument("--gallery", type=int, default=24, help="persons in the gallery (default 24)")
    parser.add_argument(
        "--sample", type=int, help="read N shards drawn at random for the distributions and verify (default: all)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample's draw (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar while reading shards")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orpose.visualize.report import write_report

    index, timings = write_report(
        args.run,
        args.out,
        gt=args.gt,
        gallery_size=args.gallery,
        progress=not args.no_progress,
        sample=args.sample,
        seed=args.seed,
    )
    print(
        f"wrote {index} in {timings.total:.1f} s (statistics {timings.statistics:.1f} s, "
        f"verify {timings.verify:.1f} s, evaluation {timings.evaluation:.1f} s, plots {timings.plots:.1f} s, "
        f"gallery {timings.gallery:.1f} s)"
    )
    return 0
