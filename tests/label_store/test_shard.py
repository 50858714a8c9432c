"""Shards: bit-exact round trips, the commit protocol under kills, verification."""

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from orpose.label_store.reader import LabelRun
from orpose.label_store.schema import FRAME_FIELDS, FUSION_PERSON_FIELDS, PERSON_FIELDS, STATUS_REJECTED
from orpose.label_store.shard import commit_shard, manifest_entries, verify_shard


def with_fusion_fields(records):
    """Copies of the records with every version-2 field set to values unlike its fill."""
    rng = np.random.default_rng(44)
    out = copy.deepcopy(records)
    for k, record in enumerate(out):
        record.frame["instant"] = 10 + k
        for f in FUSION_PERSON_FIELDS:
            if record.num_persons:
                values = rng.normal(size=(record.num_persons, *f.shape)) * 100
                record.persons[f.name] = values.astype(f.dtype) if f.dtype is not np.bool_ else values > 0
    return out


def test_round_trip_is_bit_exact(tmp_path, records, provenance):
    records = with_fusion_fields(records)
    entry = commit_shard(tmp_path, 0, records, provenance)
    assert entry.frame_ids == tuple(r.frame["frame_id"] for r in records)
    assert verify_shard(tmp_path / entry.file) == []
    run = LabelRun(tmp_path)
    assert run.frame_ids() == list(entry.frame_ids)
    assert sum(r.num_persons for r in records) > 0
    for record in records:
        back = run.get(record.frame["frame_id"])
        for f in FRAME_FIELDS:
            np.testing.assert_array_equal(
                np.asarray(back.frame[f.name]),
                np.asarray(record.frame[f.name], dtype=back.frame[f.name].dtype if f.dtype != "str" else object),
            )
        for f in PERSON_FIELDS:
            if f.name == "frame_index":
                continue
            expected = record.persons.get(f.name, [])
            got = back.persons[f.name]
            assert len(got) == record.num_persons
            if f.dtype == "str":
                assert list(got) == list(expected)
            else:
                np.testing.assert_array_equal(
                    got, np.asarray(expected, dtype=f.dtype).reshape(got.shape)
                )  # NaN == NaN here
    rejected = run.get(records[1].frame["frame_id"])
    assert rejected.frame["status"] == STATUS_REJECTED and rejected.frame["reject_reason"] == "corrupt_image"
    assert len(rejected) == 0 and entry.rejected == {records[1].frame["frame_id"]: "corrupt_image"}
    assert run.provenance()["checkpoints_json"] and run.provenance()["config_hash"] == provenance["config_hash"]


def test_commit_is_idempotent_and_never_rewrites(tmp_path, records, provenance):
    first = commit_shard(tmp_path, 3, records, provenance)
    path = tmp_path / first.file
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    again = commit_shard(tmp_path, 3, records[:1], provenance)  # a retried batch: nothing is written
    assert again == first and (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert [e.index for e in manifest_entries(tmp_path)] == [3]


def test_an_unlisted_shard_file_is_invisible_and_is_adopted_on_retry(tmp_path, records, provenance):
    entry = commit_shard(tmp_path, 0, records, provenance)
    (tmp_path / "manifest" / "shard-00000.json").unlink()  # as if killed after the link, before the entry
    with pytest.raises(FileNotFoundError):
        LabelRun(tmp_path / "nothing")
    assert LabelRun(tmp_path).frame_ids() == []  # the run does not see it
    again = commit_shard(tmp_path, 0, records, provenance)
    assert again.sha256 == entry.sha256


WRITER = r"""
import sys, numpy as np
from orpose.label_store.shard import FrameRecord, commit_shard
prov = dict(config_json="{}", config_hash="h", checkpoints_json="{}", code_version="t", packages_json="{}",
            thresholds_json="{}", tta_json="{}", created="now")
run, count = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
for index in range(count):
    records = []
    for f in range(40):
        p = int(rng.integers(0, 4))
        persons = dict(
            box=rng.random((p, 4)), score=rng.random(p), mask_rle=["x"] * p, keypoints_2d=rng.random((p, 17, 3)),
            keypoint_spread=rng.random((p, 17)), hard_mask=rng.random((p, 17)) > .5, hard_valid=np.ones(p, bool),
            pose3d_soft=rng.random((p, 17, 3)), pose3d_hard=rng.random((p, 17, 3)),
            depth_keypoints=rng.random((p, 17, 2)), depth_flag=np.zeros((p, 17), np.int8),
            pose3d_camera=rng.random((p, 17, 3)), depth_consistency=rng.random((p, 17)))
        frame = dict(frame_id=f"s{index}-f{f}", camera_id="c", color_path="/x.png", depth_path="",
                     color_size=[640, 480], depth_size=[0, 0], depth_unit_mm=0.0, timestamp=float(f), status=0,
                     reject_reason="", reject_detail="")
        records.append(FrameRecord(frame, persons))
    commit_shard(run, index, records, prov)
"""


@pytest.mark.parametrize("seed", range(6))
def test_a_writer_killed_at_random_leaves_only_complete_verified_shards(tmp_path, seed):
    rng = np.random.default_rng(seed)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[2]))
    run = tmp_path / "run"
    for _ in range(3):
        process = subprocess.Popen([sys.executable, str(script), str(run), "12"], env=env)
        time.sleep(float(rng.uniform(0.5, 3.0)))
        process.send_signal(signal.SIGKILL)
        process.wait()
        visible = sorted((run / "shards").glob("shard-*.h5")) if (run / "shards").exists() else []
        for shard in visible:  # final names only ever hold complete, verified files
            assert verify_shard(shard) == [], shard
        for entry in manifest_entries(run):
            assert verify_shard(run / entry.file) == []
            assert len(entry.frame_ids) == 40
    finished = subprocess.run([sys.executable, str(script), str(run), "12"], env=env)  # resume to the end
    assert finished.returncode == 0
    entries = manifest_entries(run)
    assert [e.index for e in entries] == list(range(12))
    frame_counts = {}
    for entry in entries:
        for frame_id in entry.frame_ids:
            frame_counts[frame_id] = frame_counts.get(frame_id, 0) + 1
    assert len(frame_counts) == 12 * 40 and set(frame_counts.values()) == {1}  # every frame exactly once


def test_verify_catches_a_flipped_byte_in_the_data(tmp_path, records, provenance):
    entry = commit_shard(tmp_path, 0, records, provenance)
    path = tmp_path / entry.file
    with h5py.File(path, "r") as handle:
        offset = handle["persons/keypoints_2d"].id.get_chunk_info(0).byte_offset
    data = bytearray(path.read_bytes())
    data[offset + 10] ^= 0x01
    path.write_bytes(bytes(data))
    problems = verify_shard(path)
    assert problems and any("keypoints_2d" in p for p in problems)


def test_a_shard_with_flipped_bytes_is_refused_on_read(tmp_path, records, provenance):
    """Every dataset carries a per-chunk checksum (fletcher32) that HDF5 checks on read: a reader never hands
    a student numbers that changed on disk; the error names the shard and the dataset."""
    from orpose.label_store.reader import LabelRun
    from orpose.label_store.shard import ShardReadError

    entry = commit_shard(tmp_path, 0, records, provenance)
    path = tmp_path / entry.file
    with h5py.File(path, "r") as handle:
        assert all(handle[f"persons/{name}"].fletcher32 for name in ("keypoints_2d", "box", "pose3d_soft"))
        offset = handle["persons/keypoints_2d"].id.get_chunk_info(0).byte_offset
    frame_id = records[0].frame["frame_id"]
    assert LabelRun(tmp_path).get(frame_id) is not None  # reads whole before the damage
    data = bytearray(path.read_bytes())
    data[offset + 10] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ShardReadError, match=rf"{path.name}: dataset /persons/keypoints_2d is damaged"):
        LabelRun(tmp_path).get(frame_id)


def test_verify_names_missing_and_malformed_parts(tmp_path, records, provenance):
    entry = commit_shard(tmp_path, 0, records, provenance)
    path = tmp_path / entry.file
    copy = tmp_path / "copy.h5"
    copy.write_bytes(path.read_bytes())
    with h5py.File(copy, "a") as handle:
        del handle["persons/pose3d_hard"]
        handle.attrs["num_frames"] = 99
    problems = "\n".join(verify_shard(copy))
    assert "/persons/pose3d_hard is missing" in problems and "/frames/frame_id has shape" in problems
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    assert "cannot be opened as HDF5" in verify_shard(tmp_path / "junk.h5")[0]


def test_the_loser_of_two_attempts_at_one_shard_commits_nothing_of_its_own(tmp_path, records, provenance, monkeypatch):
    """Ray may run a batch twice: two attempts write the same shard at once. The second to link
    finds the name taken, removes its own file and returns the winner's entry."""
    from orpose.frames import durable

    winner = {}
    real_io = durable.IO

    class OtherAttemptFirst(durable.SystemIO):
        def link(self, source, target):
            if not winner and target.suffix == ".h5":  # the other attempt commits first, in the middle of ours
                monkeypatch.setattr(durable, "IO", real_io)
                winner["entry"] = commit_shard(tmp_path, 0, records[:2], provenance)
            return real_io.link(source, target)

    monkeypatch.setattr(durable, "IO", OtherAttemptFirst())
    loser = commit_shard(tmp_path, 0, records, provenance)
    assert loser == winner["entry"] and len(loser.frame_ids) == 2  # the winner's content stands
    assert sorted(p.name for p in (tmp_path / "shards").iterdir()) == ["shard-00000.h5"]  # no temporary left
    assert sorted(p.name for p in (tmp_path / "manifest").iterdir()) == ["shard-00000.json"]
    assert LabelRun(tmp_path).frame_ids() == [r.frame["frame_id"] for r in records[:2]]


def test_a_final_shard_without_its_entry_that_does_not_hold_the_planned_frames_is_replaced(
    tmp_path, records, provenance
):
    commit_shard(tmp_path, 0, records[:2], provenance)
    (tmp_path / "manifest" / "shard-00000.json").unlink()  # killed between link and entry, other frames
    entry = commit_shard(tmp_path, 0, records, provenance)
    assert list(entry.frame_ids) == [r.frame["frame_id"] for r in records]
    assert verify_shard(tmp_path / entry.file) == [] and LabelRun(tmp_path).frame_ids() == list(entry.frame_ids)
    # and a damaged one is replaced too
    (tmp_path / "manifest" / "shard-00000.json").unlink()
    path = tmp_path / entry.file
    path.write_bytes(path.read_bytes()[:2000])
    again = commit_shard(tmp_path, 0, records, provenance)
    assert verify_shard(tmp_path / again.file) == [] and list(again.frame_ids) == list(entry.frame_ids)


def test_a_version_1_shard_verifies_and_reads_its_missing_fields_as_their_fill(tmp_path, records, provenance):
    entry = commit_shard(tmp_path, 0, records, provenance)
    path = tmp_path / entry.file
    with h5py.File(path, "r+") as handle:  # as version 1 wrote it: none of the fields added since
        for group, fields in (("frames", FRAME_FIELDS), ("persons", PERSON_FIELDS)):
            for f in fields:
                if f.since > 1:
                    del handle[group][f.name]
        handle.attrs["version"] = 1
    assert verify_shard(path) == []
    back = LabelRun(path).get(records[0].frame["frame_id"])
    assert back.frame["instant"] == -1 and len(back) == records[0].num_persons > 0
    assert np.isnan(back.persons["pose3d_room"]).all() and (back.persons["fusion_group"] == -1).all()
    assert not back.persons["pose3d_room_hard"].any() and (back.persons["pose3d_room_views"] == 0).all()
    from orpose.label_store.dataset import PoseLabelDataset

    item = PoseLabelDataset(LabelRun(path), factor=1)[0]  # the students' reader fills them too
    assert item["pose3d_room_camera"].isnan().all() and not item["pose3d_room_hard"].any()
    with h5py.File(path, "r+") as handle:
        handle.attrs["version"] = 3
    assert "not a shard of version 1 or 2" in verify_shard(path)[0]
