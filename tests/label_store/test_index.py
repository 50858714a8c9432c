"""The run index's person columns and tables (issue 43): known answers for the person summaries, every column equal
to what the shards hold, runs written before a column read and upgraded, the Parquet tables equal to the index and
dropped with it when a commit changes the run."""

from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest

from orpose.label_store.index import (
    INDEX_COLUMNS,
    PERSON_INDEX_COLUMNS,
    consolidate_index,
    load_index,
    load_person_index,
    part_path,
    person_summary,
)
from orpose.label_store.inspection import verify_index
from orpose.label_store.reader import LabelRun
from orpose.label_store.shard import commit_shard


def _renamed(records, prefix: str):
    return [replace(r, frame={**r.frame, "frame_id": f"{prefix}/{r.frame['frame_id']}"}) for r in records]


@pytest.fixture()
def run(tmp_path, records, provenance):
    for shard in (0, 1, 3):
        commit_shard(tmp_path, shard, _renamed(records, f"s{shard}"), provenance)
    return tmp_path


def test_person_summary_known_answer():
    keypoints = np.zeros((2, 17, 3), np.float32)
    keypoints[0, :, 2] = np.linspace(0, 1, 17)  # mean 0.5, median 0.5
    keypoints[1, :, 2] = 0.25
    keypoints[1, 3, 2] = 1.0  # mean (16 * 0.25 + 1) / 17, median 0.25
    hard = np.zeros((2, 17), bool)
    hard[0, [0, 2, 16]] = True
    summary = person_summary(
        {"score": np.array([0.9, 0.4]), "keypoints_2d": keypoints, "hard_mask": hard, "hard_valid": [True, False]}
    )
    np.testing.assert_allclose(summary["person_confidence_mean"], [0.5, 5 / 17], rtol=1e-6)
    np.testing.assert_array_equal(summary["person_confidence_median"], np.float32([0.5, 0.25]))
    assert summary["person_hard_mask"].tolist() == [1 + 4 + 65536, 0]
    assert summary["person_hard_keypoints"].tolist() == [3, 0]
    assert summary["person_hard_valid"].tolist() == [True, False]
    assert summary["person_score"].dtype == np.float32 and summary["person_score"].tolist() == pytest.approx([0.9, 0.4])


def _expected(run_dir):
    """Every index column computed from the frames and persons LabelRun reads from the shards."""
    frames, persons = [], []
    for labels in LabelRun(run_dir):
        frames.append(labels.frame)
        p = labels.persons
        for k in range(len(labels)):
            c = p["keypoints_2d"][k, :, 2]
            bits = sum(1 << j for j in range(17) if p["hard_mask"][k, j])
            persons.append((p["score"][k], c.mean(), np.median(c), p["hard_mask"][k].sum(), bits, p["hard_valid"][k]))
    return frames, persons


def test_the_index_holds_what_the_shards_hold(run):
    consolidate_index(run)
    index, person_index = load_index(run), load_person_index(run)
    frames, persons = _expected(run)
    assert [f["reject_reason"] for f in frames] == [r.decode() for r in index.reject_reason]
    assert any(index.reject_reason) and index.reject_reason[index.status == 0].tolist() == [b""] * 9
    np.testing.assert_array_equal([f["timestamp"] for f in frames], index.timestamp)
    assert len(person_index) == len(persons) == index.persons.sum() > 0
    columns = list(zip(*persons))
    for name, expected in zip(PERSON_INDEX_COLUMNS, columns):
        np.testing.assert_allclose(getattr(person_index, name.removeprefix("person_")), expected, rtol=1e-6)
    hard = np.array([[bool(bits >> j & 1) for j in range(17)] for bits in columns[4]])
    np.testing.assert_array_equal(person_index.hard_per_joint(), hard.sum(0))


def test_parts_written_before_the_person_columns_are_read_from_the_shards_and_upgraded(run):
    consolidate_index(run)
    before, persons_before = load_index(run), load_person_index(run)
    for name in ("index.npz", "frames.parquet", "persons.parquet"):
        (run / "index" / name).unlink()
    for shard in (0, 1, 3):  # the columns a part had before issue 43
        path = part_path(run, shard)
        with np.load(path) as data:
            old = {k: data[k] for k in ("frame_id", "shard", "row", "status", "camera_id", "persons", "has_depth")}
        np.savez(path, **old)
    after = load_index(run)
    for name in INDEX_COLUMNS:
        np.testing.assert_array_equal(getattr(after, name), getattr(before, name))
    np.testing.assert_array_equal(load_person_index(run).hard_mask, persons_before.hard_mask)
    assert verify_index(run) == []  # an older part is not damage: readers take its new columns from the shard
    consolidate_index(run)
    with np.load(part_path(run, 1)) as data:
        assert set(INDEX_COLUMNS + PERSON_INDEX_COLUMNS) <= set(data.files)
    assert (run / "index" / "persons.parquet").exists()


def test_the_tables_equal_the_index_and_go_with_it(run, records, provenance):
    index = consolidate_index(run)
    person_index = load_person_index(run)
    frames = pq.read_table(run / "index" / "frames.parquet").to_pydict()
    assert frames["frame_id"] == [f.decode() for f in index.frame_id]
    assert frames["reject_reason"] == [r.decode() for r in index.reject_reason]
    assert frames["persons"] == index.persons.tolist() and frames["shard"] == index.shard.tolist()
    persons = pq.read_table(run / "index" / "persons.parquet").to_pydict()
    owner = np.repeat(np.arange(len(index)), index.persons)
    assert persons["frame_id"] == [index.frame_id_at(i) for i in owner]
    counts = index.persons[index.persons > 0]
    assert persons["person"] == [k for n in counts for k in range(n)]
    assert persons["hard_mask"] == person_index.hard_mask.tolist()
    np.testing.assert_array_equal(persons["confidence_median"], person_index.confidence_median)

    commit_shard(run, 4, _renamed(records, "s4"), provenance)  # the run changes: the tables no longer describe it
    assert not (run / "index" / "frames.parquet").exists() and not (run / "index" / "persons.parquet").exists()


def test_verify_names_a_person_column_that_differs_from_its_shard(run):
    consolidate_index(run)
    path = part_path(run, 3)
    with np.load(path) as data:
        part = {k: data[k] for k in data.files}
    part["person_confidence_median"] = part["person_confidence_median"] + 1e-3
    np.savez(path, **part)
    problems = verify_index(run)
    assert len(problems) == 1 and "shard-00003.npz: person_confidence_median differ" in problems[0]
