"""`LabelRun` opens a run through its index (issue 43): no shard file is opened until a frame of it is read, every
frame is found by its id and read back as its shard holds it, iteration goes shard by shard in the run's order,
and a frame id in two shards is refused naming both files."""

from dataclasses import replace

import h5py
import numpy as np
import pytest

from orpose.label_store.index import consolidate_index
from orpose.label_store.reader import LabelRun
from orpose.label_store.shard import commit_shard, shard_path


def _renamed(records, prefix: str):
    return [replace(r, frame={**r.frame, "frame_id": f"{prefix}/{r.frame['frame_id']}"}) for r in records]


@pytest.fixture()
def run(tmp_path, records, provenance):
    for shard in (2, 0, 5):  # committed out of order, with gaps: the run's order is the shards' indices
        commit_shard(tmp_path, shard, _renamed(records, f"s{shard}"), provenance)
    consolidate_index(tmp_path)
    return tmp_path


def test_opening_a_run_and_asking_for_its_ids_opens_no_shard(run, records, monkeypatch):
    opened = []
    real = h5py.File
    monkeypatch.setattr(h5py, "File", lambda path, *a, **k: opened.append(str(path)) or real(path, *a, **k))
    labels = LabelRun(run)
    expected = [f"s{shard}/{r.frame['frame_id']}" for shard in (0, 2, 5) for r in records]
    assert len(labels) == len(expected) and labels.frame_ids() == expected
    assert expected[-1] in labels and "s1/nothing" not in labels and "x" * 500 not in labels
    assert opened == []
    labels.get(expected[-1])
    assert opened == [str(shard_path(run, 5))]  # one shard, the frame's own


def test_every_frame_reads_back_as_its_shard_holds_it_by_id_and_in_order(run, records):
    labels = LabelRun(run)
    iterated = list(labels)
    assert [f.frame_id for f in iterated] == labels.frame_ids()
    for frame in iterated:
        got = labels.get(frame.frame_id)
        assert got.frame_id == frame.frame_id and len(got) == len(frame)
        np.testing.assert_array_equal(got.persons["keypoints_2d"], frame.persons["keypoints_2d"])
    by_id = {f"s2/{r.frame['frame_id']}": r for r in records}
    for frame_id, record in by_id.items():
        assert len(labels.get(frame_id)) == len(record.persons.get("box", []))
    with pytest.raises(KeyError, match="s9/none"):
        labels.get("s9/none")


def test_a_single_shard_file_opens_as_a_run_of_one_shard(run, records):
    labels = LabelRun(shard_path(run, 2))
    assert labels.frame_ids() == [f"s2/{r.frame['frame_id']}" for r in records]
    assert labels.get(f"s2/{records[0].frame['frame_id']}").frame_id == f"s2/{records[0].frame['frame_id']}"


def test_a_frame_in_two_shards_is_refused_naming_both(tmp_path, records, provenance):
    commit_shard(tmp_path, 0, _renamed(records, "a"), provenance)
    commit_shard(tmp_path, 1, _renamed(records[:1], "a"), provenance)  # the first frame again
    labels = LabelRun(tmp_path)
    with pytest.raises(ValueError, match="shard-00001.h5: frame 'a/.*' is also in .*shard-00000.h5"):
        labels.get(f"a/{records[0].frame['frame_id']}")


def test_select_reads_the_asked_frames_in_run_order_from_their_shards_only(run, records, monkeypatch):
    opened = []
    real = h5py.File
    monkeypatch.setattr(h5py, "File", lambda path, *a, **k: opened.append(str(path)) or real(path, *a, **k))
    labels = LabelRun(run)
    last, first = records[-1].frame["frame_id"], records[0].frame["frame_id"]
    asked = [f"s5/{last}", "s9/not-there", f"s0/{last}", f"s0/{first}"]
    picked = list(labels.select(asked))
    assert [f.frame_id for f in picked] == [f"s0/{first}", f"s0/{last}", f"s5/{last}"]  # run order, unknown left out
    assert sorted(set(opened)) == sorted({str(shard_path(run, 0)), str(shard_path(run, 5))})  # shard 2 never read
    assert picked[2].frame["color_path"] == labels.get(f"s5/{last}").frame["color_path"]
