"""`labels query` (issue 43): SQL over the run's index tables gives the answers numpy gives over the index, writes
CSV and Parquet, and a run without current tables gets an error that says how to write them."""

import csv
from dataclasses import replace

import numpy as np
import pytest

from orpose.label_store.index import consolidate_index, load_index, load_person_index
from orpose.label_store.query import query_run
from orpose.label_store.shard import commit_shard
from tests.cli import labels


@pytest.fixture()
def run(tmp_path, records, provenance):
    for shard in range(3):
        renamed = [replace(r, frame={**r.frame, "frame_id": f"s{shard}/{r.frame['frame_id']}"}) for r in records]
        commit_shard(tmp_path / "run", shard, renamed, provenance)
    consolidate_index(tmp_path / "run")
    return tmp_path / "run"


def test_queries_answer_as_the_index_does(run):
    index, persons = load_index(run), load_person_index(run)
    rows = query_run(run, "SELECT status, count(*), sum(persons) FROM frames GROUP BY status ORDER BY status")
    assert rows.fetchall() == [
        (0, int((index.status == 0).sum()), int(index.persons.sum())),
        (1, int((index.status == 1).sum()), 0),
    ]
    # frames with at least two persons whose median keypoint confidence is below 0.6
    owner = np.repeat(np.arange(len(index)), index.persons)
    unsure = np.bincount(owner[persons.confidence_median < 0.6], minlength=len(index))
    expected = sorted(index.frame_id_at(i) for i in np.flatnonzero(unsure >= 2))
    sql = "SELECT frame_id FROM persons GROUP BY frame_id HAVING count(*) FILTER (WHERE confidence_median < 0.6) >= 2"
    assert sorted(r[0] for r in query_run(run, sql).fetchall()) == expected
    # the hard share of the left wrist (COCO joint 9) from the bit mask
    share = query_run(run, "SELECT avg(((hard_mask >> 9) & 1)::DOUBLE) FROM persons").fetchall()[0][0]
    assert share == pytest.approx(persons.hard_per_joint()[9] / len(persons))


def test_labels_query_prints_and_writes(run, tmp_path):
    shown = labels("query", run, "SELECT camera_id, count(*) AS n FROM frames GROUP BY ALL")
    assert shown.returncode == 0 and "camera_id" in shown.stdout and "│" in shown.stdout
    out = tmp_path / "persons.csv"
    written = labels("query", run, "SELECT frame_id, person, score FROM persons ORDER BY frame_id, person", "-o", out)
    assert written.returncode == 0, written.stderr
    with out.open() as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == len(load_person_index(run)) and set(table[0]) == {"frame_id", "person", "score"}
    bad = labels("query", run, "SELECT nothing FROM frames")
    assert bad.returncode == 2 and "nothing" in bad.stderr and str(run) in bad.stderr


def test_a_run_without_current_tables_is_told_how_to_write_them(run, records, provenance):
    commit_shard(run, 7, records, provenance)  # a commit drops the consolidated index and its tables
    result = labels("query", run, "SELECT count(*) FROM frames")
    assert result.returncode == 2 and f"labels index {run}" in result.stderr
    assert labels("index", run).returncode == 0
    assert query_run(run, "SELECT count(*) FROM frames").fetchall()[0][0] == len(load_index(run))
