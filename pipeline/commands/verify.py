"""`labels verify`: check every shard of a run against its manifest."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "verify",
        help="check schema, checksums, manifest and plan; exit 1 naming each problem",
        description="Check every shard's schema and per-dataset checksums, the manifest against "
        "the files (sha256), the run index against the shards, and the plan against the manifest. Exits 1 and "
        "names each problem. A large run: --jobs checks shards in parallel processes, --sample N spot-checks N "
        "shards drawn at random (the listing, the leftovers and the plan's coverage are still checked whole).",
        epilog="examples:\n  labels verify runs/day1\n  labels verify runs/10M --jobs 8\n"
        "  labels verify runs/10M --sample 200 --seed 7",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("path", help="run directory or shard file")
    parser.add_argument("--jobs", type=int, default=1, help="processes checking shards (default 1)")
    parser.add_argument("--sample", type=int, help="check N shards drawn at random instead of every shard")
    parser.add_argument("--seed", type=int, default=0, help="the draw of --sample (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (it goes to stderr)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orpose.label_store.inspection import verify_run

    if args.jobs < 1 or (args.sample is not None and args.sample < 1):
        print("labels verify: --jobs and --sample must be >= 1", file=sys.stderr)
        return 2
    problems = verify_run(args.path, sample=args.sample, jobs=args.jobs, seed=args.seed, progress=not args.no_progress)
    for problem in problems:
        print(problem)
    checked = f" ({args.sample} shards sampled with seed {args.seed})" if args.sample is not None else ""
    print(f"{args.path}: {'OK' if not problems else f'{len(problems)} problem(s)'}{checked}")
    return 1 if problems else 0
