"""`labels verify`: check every shard of a run against its manifest."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "verify",
        help="check schema, checksums, manifest and plan; exit 1 naming each problem",
        description="Check every shard's schema and per-dataset checksums, the manifest against "
        "the files (sha256), and the plan against the manifest. Exits 1 and names each problem.",
    )
    parser.add_argument("path", help="run directory or shard file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orpose.label_store.inspection import verify_run

    problems = verify_run(args.path)
    for problem in problems:
        print(problem)
    print(f"{args.path}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0
