"""The shard committer and the run's hooks, driven with batches as an executor yields them: a shard is
committed when its last frame arrives, a frame handed over twice counts once, what is left in flight is
dropped at the end, and the guard stops a run that rejects too many frames."""

import numpy as np
import pytest

from orpose.configs.schema import load_teacher_config
from orpose.frames.calibration import CameraCalibration, Intrinsics
from orpose.frames.sources import FrameRef
from orpose.label_store.provenance import make_provenance
from orpose.label_store.schema import STATUS_LABELLED
from orpose.label_store.shard import FrameRecord, manifest_entries
from orpose.pipeline.commit import RejectGuard, RunHook, ShardCommitter, commit_batches
from orpose.pipeline.summary import RunError
from orpose.stages.records import frame_row, rejected_record
from tests.plans import pending_from_ids

PROVENANCE = make_provenance(load_teacher_config("tiny"), {"c": "0"})
CALIBRATION = CameraCalibration("cam", Intrinsics(64, 48, 60.0, 60.0, 31.5, 23.5), None, False, None, 1.0)


def batch_of(pending, ids: list[str], rejected: set[str] = frozenset()) -> dict:
    rows = {str(f): (int(p), int(s)) for b in pending.iter_batches(1000) for f, p, s in zip(
        b["frame_id"], b["position"], b["shard_index"])}  # fmt: skip
    records = np.empty(len(ids), dtype=object)
    for i, frame_id in enumerate(ids):
        ref = FrameRef(frame_id, "cam", f"/x/{frame_id}.png", None)
        records[i] = (
            rejected_record(ref, CALIBRATION, "corrupt_image", f"{frame_id}: bad")
            if frame_id in rejected
            else FrameRecord(frame_row(ref, CALIBRATION, STATUS_LABELLED))
        )
    return {
        "frame_id": np.array(ids, dtype=object),
        "position": np.array([rows[f][0] for f in ids]),
        "shard_index": np.array([rows[f][1] for f in ids]),
        "record": records,
    }


class Recorder(RunHook):
    def __init__(self):
        self.fresh, self.commits, self.ended = [], [], 0

    def on_batch(self, batch, fresh):
        self.fresh.append([str(batch["frame_id"][i]) for i in fresh])

    def on_commit(self, shard):
        self.commits.append(shard)

    def on_end(self):
        self.ended += 1


def test_a_shard_is_committed_when_its_last_frame_arrives_and_a_repeat_counts_once(tmp_path):
    ids = [f"f{n}" for n in range(7)]  # shards of 3: [f0 f1 f2] [f3 f4 f5] [f6]
    pending = pending_from_ids(tmp_path / "run", ids, shard_size=3)
    recorder = Recorder()
    committer = ShardCommitter(tmp_path / "run", pending.plan, PROVENANCE, [recorder])
    batches = [batch_of(pending, ["f2", "f0", "f3"]), batch_of(pending, ["f0", "f1", "f6"]), batch_of(pending, ["f4"])]
    commit_batches(iter(batches), committer, [recorder])
    assert recorder.fresh == [["f2", "f0", "f3"], ["f1", "f6"], ["f4"]]  # f0 again: not new
    assert recorder.commits == [0, 2] and recorder.ended == 1  # shard 1 lacks f5
    entries = {e.index: list(e.frame_ids) for e in manifest_entries(tmp_path / "run")}
    assert entries == {0: ["f0", "f1", "f2"], 2: ["f6"]}  # in source order, whatever the arrival order
    assert committer.waiting == {}  # complete(): f3 and f4 dropped, shard 1 stays pending


def test_an_attempt_that_breaks_drops_what_is_in_flight_and_ends_the_hooks(tmp_path):
    pending = pending_from_ids(tmp_path / "run", ["a", "b", "c", "d"], shard_size=2)
    recorder = Recorder()
    committer = ShardCommitter(tmp_path / "run", pending.plan, PROVENANCE, [recorder])

    def broken():
        yield batch_of(pending, ["a", "c"])
        raise ConnectionError("node lost")

    with pytest.raises(ConnectionError):
        commit_batches(broken(), committer, [recorder])
    assert recorder.commits == [] and recorder.ended == 1 and committer.waiting == {}


def test_the_guard_stops_the_run_past_the_rejected_fraction_counting_the_reasons(tmp_path):
    ids = [f"f{n:02d}" for n in range(10)]
    pending = pending_from_ids(tmp_path / "run", ids, shard_size=5)
    guard = RejectGuard(0.2, total=10, run_dir=tmp_path / "run")
    committer = ShardCommitter(tmp_path / "run", pending.plan, PROVENANCE, [guard])
    first = batch_of(pending, ids[:5], rejected={"f01"})
    second = batch_of(pending, ids[5:], rejected={"f05", "f06"})
    with pytest.raises(RunError, match=r"3 of 10 frames were rejected \(30 % > run.max_rejected_fraction = 20 %\)"):
        commit_batches(iter([first, second]), committer, [guard])
    assert "3 x corrupt_image" in guard.message(3)
