"""`labels index`: write a run's index (for runs written before it, or to rebuild it)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "index",
        help="write a run's index (index/index.npz and its Parquet tables), which readers and queries open",
        description="Write the run index: one row per frame (id, shard, row, status, reject reason, camera, "
        "timestamp, person count, depth) and one per person (score, mean and median keypoint confidence, hard "
        "keypoints) as arrays in RUN/index/index.npz, which LabelRun, PoseLabelStream and PoseLabelDataset open "
        "in a fixed number of file reads whatever the run's size, and as RUN/index/frames.parquet and "
        "persons.parquet for `labels query`, DuckDB, pandas or Spark (docs/label_format.md, 'The run index'). "
        "`labels run` writes it as it commits; this command adds it to runs written before it, or before one of "
        "its columns (from the shards' own columns), or rebuilds it with --rebuild. `labels verify` checks it "
        "against the shards.",
    )
    parser.add_argument("run", help="run directory")
    parser.add_argument("--rebuild", action="store_true", help="rebuild every shard's part from the shard itself")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orpose.label_store.index import consolidate_index

    started = time.perf_counter()
    index = consolidate_index(args.run, rebuild=args.rebuild)
    print(
        f"indexed {len(index)} frames ({len(index.labelled())} labelled) of {len(index.shards)} shards into "
        f"{Path(args.run) / 'index' / 'index.npz'} in {time.perf_counter() - started:.1f} s"
    )
    return 0
