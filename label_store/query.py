"""`labels query`: SQL over a run's index tables with DuckDB, in process and without a server.

Two tables (docs/querying.md): `frames`, one row per frame (`index/frames.parquet`), and `persons`, one row per
person with its frame's id (`index/persons.parquet`), both written with the consolidated index by `labels run`
and `labels index` (`orpose.label_store.index`). Nothing but those two files is read: a question about counts,
scores or confidences over ten million frames opens no shard.
"""

from __future__ import annotations

from pathlib import Path

from orpose.label_store.index import TABLES, committed_shard_indices

__all__ = ["index_tables", "connect", "query_run"]


class IndexTablesMissing(FileNotFoundError):
    pass


def index_tables(run_dir: str | Path) -> dict[str, Path]:
    """{table name: Parquet file} of a run; an error naming the run and the fix when the tables are missing or
    older than its committed shards (a run still being written, or written before the tables existed)."""
    import numpy as np

    run_dir = Path(run_dir)
    if not (run_dir / "manifest").is_dir():
        raise FileNotFoundError(f"{run_dir}: not a run directory (no manifest/)")
    folder = run_dir / "index"
    paths = {name.removesuffix(".parquet"): folder / name for name in TABLES}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise IndexTablesMissing(
            f"{run_dir}: no index tables ({', '.join(missing)} missing): `labels index {run_dir}` writes them "
            "(a run still being labelled has them once it finishes)"
        )
    import pyarrow.parquet as pq

    # written and removed with index.npz, so they cover the committed shards unless a commit is under way
    shards = np.unique(pq.read_table(paths["frames"], columns=["shard"]).column("shard").to_numpy())
    if not np.array_equal(shards, committed_shard_indices(run_dir)):
        raise IndexTablesMissing(f"{run_dir}: its index tables predate its shards: `labels index {run_dir}`")
    return paths


def connect(run_dir: str | Path):
    """A DuckDB connection with the run's `frames` and `persons` tables as views."""
    import duckdb

    connection = duckdb.connect()
    for name, path in index_tables(run_dir).items():
        literal = str(path).replace("'", "''")
        connection.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{literal}')")
    return connection


def query_run(run_dir: str | Path, sql: str):
    """The DuckDB relation of `sql` over the run's tables (fetch it with `.fetchall()`, `.df()`, `.pl()`, ...)."""
    return connect(run_dir).sql(sql)
