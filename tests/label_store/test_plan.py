"""The streamed plan: parts cut at shard boundaries, source order kept, duplicates named, pending shards
decided from file names, pending frames read back (in this process and as Ray's read tasks do)."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orpose.frames.errors import SourceError
from orpose.frames.sources import REF_COLUMNS
from orpose.label_store.plan import (
    PLAN_DIR,
    PendingFrames,
    PlanError,
    pending_frames,
    pending_rows,
    read_plan,
    write_plan,
)
from orpose.label_store.shard import committed_shards


def batches(ids: list[str], size: int):
    """Ref batches as a source yields them, `size` rows each."""
    for start in range(0, len(ids), size):
        part = ids[start : start + size]
        yield {
            "frame_id": part,
            "camera_id": ["cam"] * len(part),
            "color_path": [f"/x/{i}.png" for i in part],
            "depth_path": [""] * len(part),
            "timestamp": [float("nan")] * len(part),
        }


IDS = [f"f{n:02d}" for n in range(10)]


def test_parts_hold_whole_shards_whatever_the_source_batches(tmp_path):
    # shard_size 3, 6 frames per part: parts [shards 0-1: 6 frames], [shards 2-3: 4 frames]; batches of 4 cross them
    plan = write_plan(tmp_path, batches(IDS, 4), 3, "fp", "src", frames_per_part=6)
    assert [(p.first_shard, p.shards, p.frames) for p in plan.parts] == [(0, 2, 6), (2, 2, 4)]
    assert (plan.num_frames, plan.num_shards, plan.shard_size, plan.fingerprint) == (10, 4, 3, "fp")
    assert [plan.shard_frames(s) for s in range(4)] == [3, 3, 3, 1]
    with pytest.raises(IndexError, match="shard 4 is not in the plan"):
        plan.shard_frames(4)
    table = pa.Table.from_batches(list(plan.iter_batches()))
    assert table.column("frame_id").to_pylist() == IDS
    assert table.column("position").to_pylist() == list(range(10))
    assert table.column("shard_index").to_pylist() == [n // 3 for n in range(10)]
    assert [ids for _, ids in plan.frame_ids()] == [IDS[0:3], IDS[3:6], IDS[6:9], IDS[9:]]
    assert read_plan(tmp_path) == plan
    assert not list(tmp_path.glob(".plan*"))  # the temporary folder is gone


def test_a_duplicate_id_is_named_with_both_paths_and_no_plan_is_left(tmp_path):
    ids = [*IDS[:7], "f02", *IDS[7:]]
    with pytest.raises(SourceError, match=r"frame id 'f02' appears twice \(/x/f02.png and /x/f02.png\)"):
        write_plan(tmp_path, batches(ids, 3), 3, None, "manifest.jsonl")
    assert not (tmp_path / PLAN_DIR).exists() and not list(tmp_path.glob(".plan*"))


def test_an_empty_source_is_refused(tmp_path):
    with pytest.raises(SourceError, match="lists no frames"):
        write_plan(tmp_path, iter(()), 3, None, "manifest.jsonl")


def test_pending_shards_come_from_the_manifest_file_names(tmp_path):
    plan = write_plan(tmp_path, batches(IDS, 10), 3, None, "src", frames_per_part=6)
    manifest = tmp_path / "manifest"
    manifest.mkdir()
    for name in ("shard-00001.json", "shard-00003.json", ".shard-00002.123.abc.json.tmp", "notes.txt"):
        (manifest / name).write_text("{}")
    assert committed_shards(tmp_path).tolist() == [1, 3]
    pending = pending_frames(tmp_path, plan)
    assert pending.shards.tolist() == [0, 2] and pending.num_frames == 6
    rows = [b for b in pending.iter_batches(batch_size=2)]
    assert [len(b["frame_id"]) for b in rows] == [2, 1, 2, 1]  # read part by part, 2 rows at a time
    assert np.concatenate([b["frame_id"] for b in rows]).tolist() == [*IDS[0:3], *IDS[6:9]]
    assert np.concatenate([b["position"] for b in rows]).tolist() == [0, 1, 2, 6, 7, 8]
    assert rows[0]["frame_id"].dtype == object and rows[0]["position"].dtype == np.int64
    assert PendingFrames(plan, np.array([3])).num_frames == 1  # the short last shard
    assert PendingFrames(plan, np.array([], dtype=np.int64)).num_frames == 0


def test_a_read_task_keeps_the_pending_rows_of_its_part(tmp_path):
    plan = write_plan(tmp_path, batches(IDS, 10), 3, None, "src", frames_per_part=6)
    files = [str(plan.folder / part.file) for part in plan.parts]
    assert PendingFrames(plan, np.array([1])).part_files() == files[:1]  # shards 0-1 are part 0
    assert PendingFrames(plan, np.array([1, 2])).part_files() == files[:2]
    part = str(plan.folder / plan.parts[0].file)
    assert pending_rows(part, np.array([0, 1])).column("frame_id").to_pylist() == IDS[0:6]
    rows = pending_rows(part, np.array([1, 2]))  # shard 2 is in part 1
    assert rows.column("frame_id").to_pylist() == IDS[3:6]
    assert set(rows.schema.names) == set(["position", "shard_index", "instant", *REF_COLUMNS])


def test_a_damaged_plan_is_an_error_naming_its_file(tmp_path):
    write_plan(tmp_path, batches(IDS, 10), 3, None, "src")
    path = tmp_path / PLAN_DIR / "plan.json"
    data = json.loads(path.read_text())
    del data["num_shards"]
    path.write_text(json.dumps(data))
    with pytest.raises(PlanError, match=r"plan/plan.json: unreadable plan \(KeyError.*--new-run"):
        read_plan(tmp_path)
    assert read_plan(tmp_path / "elsewhere") is None


def camera_major(cameras: int, moments: int, jitter_s: float = 0.002) -> dict[str, list]:
    """One ref batch listed camera by camera, as manifests and MVOR trees list frames: `moments` frames a
    camera, 30 fps, each camera's clock off by a few milliseconds."""
    rows = [(f"c{c}/{m:03d}", f"c{c}", m / 30 + c * jitter_s) for c in range(cameras) for m in range(moments)]
    return {
        "frame_id": [r[0] for r in rows],
        "camera_id": [r[1] for r in rows],
        "color_path": [f"/x/{r[0]}.png" for r in rows],
        "depth_path": [""] * len(rows),
        "timestamp": [r[2] for r in rows],
    }


def test_an_instant_ordered_plan_keeps_every_instant_whole_in_one_shard(tmp_path):
    plan = write_plan(tmp_path, [camera_major(3, 10)], 7, None, "src", frames_per_part=14, instant_tolerance_s=1 / 60)
    table = pa.concat_tables(pq.read_table(plan.folder / part.file) for part in plan.parts)
    instants, shards = table.column("instant").to_numpy(), table.column("shard_index").to_numpy()
    ids = table.column("frame_id").to_pylist()
    # instant by instant (time, then camera): the three cameras' frames of moment m are instant m
    assert ids[:6] == ["c0/000", "c1/000", "c2/000", "c0/001", "c1/001", "c2/001"]
    assert instants.tolist() == [m for m in range(10) for _ in range(3)]
    # whole instants, up to 7 frames a shard: two instants (6 frames) each; the last shard holds what is left
    assert all(len(set(shards[instants == i])) == 1 for i in range(10))
    assert [plan.shard_frames(s) for s in range(plan.num_shards)] == [6, 6, 6, 6, 6]
    assert np.bincount(shards).tolist() == [6, 6, 6, 6, 6]
    assert table.column("position").to_pylist() == list(range(30))
    # parts hold whole shards (14 frames a part -> 2 shards), and the plan reads back the same
    assert [(p.first_shard, p.shards, p.frames) for p in plan.parts] == [(0, 2, 12), (2, 2, 12), (4, 1, 6)]
    again = read_plan(tmp_path)
    assert again.shard_offsets == (0, 6, 12, 18, 24, 30) and again.instant_tolerance_s == 1 / 60
    pending = PendingFrames(again, np.array([1, 4]))
    assert pending.num_frames == 12
    frames = [f for batch in pending.iter_batches(4) for f in batch["frame_id"]]
    assert frames == ids[6:12] + ids[24:30]


def test_an_instant_larger_than_a_shard_is_refused_and_plans_without_instants_read_instant_minus_one(tmp_path):
    with pytest.raises(SourceError, match="instant holds 3 frames.*shard_size is 2"):
        write_plan(tmp_path / "a", [camera_major(3, 2)], 2, None, "src", instant_tolerance_s=1 / 60)
    plan = write_plan(tmp_path / "b", [camera_major(3, 2)], 4, None, "src")  # no fusion: source order, full shards
    batch = next(PendingFrames(plan, np.array([0, 1])).iter_batches(16))
    assert batch["frame_id"].tolist()[:2] == ["c0/000", "c0/001"] and batch["instant"].tolist() == [-1] * 6
    assert plan.shard_offsets is None and [plan.shard_frames(s) for s in range(2)] == [4, 2]


def test_a_version_2_plan_without_instants_still_reads(tmp_path):
    plan = write_plan(tmp_path, batches(IDS, 10), 4, None, "src")
    for part in plan.parts:  # as the previous version wrote them: no instant column
        path = plan.folder / part.file
        pq.write_table(pq.read_table(path).drop_columns(["instant"]), path)
    document = json.loads((plan.folder / "plan.json").read_text())
    document["version"] = 2
    for key in ("instant_tolerance_s", "shard_offsets"):
        del document[key]
    (plan.folder / "plan.json").write_text(json.dumps(document))
    old = read_plan(tmp_path)
    assert old.shard_offsets is None and PendingFrames(old, np.array([0, 2])).num_frames == 6
    batch = next(PendingFrames(old, np.array([0, 2])).iter_batches(16))
    assert batch["frame_id"].tolist() == IDS[:4] + IDS[8:] and batch["instant"].tolist() == [-1] * 6
    part = str(old.folder / old.parts[0].file)
    assert pending_rows(part, np.array([2])).column("instant").to_pylist() == [-1, -1]


def test_instants_named_by_the_source_decide_the_plan_and_a_bad_key_names_the_source(tmp_path):
    batch = camera_major(3, 4, jitter_s=0.03)  # views 30-60 ms apart: by time they would not group
    batch["instant_key"] = [f"m{i.split('/')[1]}" for i in batch["frame_id"]]
    plan = write_plan(tmp_path / "a", [batch], 3, None, "src", instant_tolerance_s=1 / 60)
    rows = pa.concat_tables(pq.read_table(plan.folder / part.file) for part in plan.parts)
    assert rows.column("instant").to_pylist() == [m for m in range(4) for _ in range(3)]
    assert [plan.shard_frames(s) for s in range(plan.num_shards)] == [3, 3, 3, 3]
    batch["instant_key"][1] = batch["instant_key"][0] = "same"  # two frames of camera c0 under one key
    with pytest.raises(SourceError, match="src.*instant 'same' holds two frames of camera 'c0'"):
        write_plan(tmp_path / "b", [batch], 3, None, "src", instant_tolerance_s=1 / 60)
