"""`labels query`: SQL over a run's index tables (DuckDB)."""

from __future__ import annotations

import argparse

_EPILOG = """\
tables (docs/querying.md):
  frames   frame_id, shard, row, status (0 labelled, 1 rejected), reject_reason, camera_id, timestamp,
           persons, has_depth
  persons  frame_id, person (its index in the frame), camera_id, shard, row, score, confidence_mean,
           confidence_median, hard_keypoints, hard_mask (joint j = bit j, COCO order), hard_valid

examples:
  labels query runs/tiny-sample "SELECT status, reject_reason, count(*) FROM frames GROUP BY ALL"
  labels query runs/tiny-sample "SELECT frame_id FROM persons GROUP BY frame_id
      HAVING count(*) FILTER (WHERE confidence_median < 0.5) >= 3"
  labels query runs/tiny-sample "SELECT * FROM persons WHERE NOT hard_valid" -o unsure.parquet
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "query",
        help="SQL over a run's frame and person tables (DuckDB, no shard opened)",
        description="Run one SQL statement (DuckDB's dialect) over the run's index tables, `frames` and "
        "`persons` (RUN/index/frames.parquet and persons.parquet, written by `labels run` and `labels index`), "
        "and print the result as a table, or write it to a CSV or Parquet file. Only the index is read, so a "
        "question about counts, scores or confidences takes seconds on millions of frames. The same files open "
        "in pandas, Polars, Spark or DuckDB directly.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run", help="run directory")
    parser.add_argument("sql", help="one SQL statement over the tables `frames` and `persons`")
    parser.add_argument("-o", "--out", help="write the whole result to this .csv or .parquet file instead")
    parser.add_argument("--rows", type=int, default=40, help="rows printed (default 40; the count is always given)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import duckdb

    from orpose.label_store.query import query_run

    try:
        relation = query_run(args.run, args.sql)
    except duckdb.Error as error:
        raise ValueError(f"{args.run}: {error}") from None
    if relation is None:  # a statement without a result (e.g. SET)
        return 0
    if args.out:
        if args.out.endswith(".parquet"):
            relation.write_parquet(args.out)
        elif args.out.endswith(".csv"):
            relation.write_csv(args.out)
        else:
            raise ValueError(f"{args.out}: --out must end in .csv or .parquet")
        print(f"wrote {relation.shape[0]} rows to {args.out}")
        return 0
    relation.show(max_rows=args.rows, max_width=200)
    return 0
