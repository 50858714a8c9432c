"""A driver of `labels run` without Ray or models (tests/pipeline/test_driver.py, the fault suite): the dataset
Ray would build is replaced by one that yields records as the assemble stage would, and the checkpoints by
stand-in files that are hashed for the run's identity and never loaded."""

from collections import Counter

import numpy as np

import orpose.pipeline.run as run_module
from orpose.configs.schema import load_teacher_config
from orpose.frames.calibration import CameraCalibration, Intrinsics
from orpose.frames.errors import CorruptImageError
from orpose.frames.sources import FrameRef, FrameSource
from orpose.label_store.schema import PERSON_FIELDS, STATUS_LABELLED, STR
from orpose.label_store.shard import FrameRecord, manifest_entries
from orpose.stages.records import frame_row, rejected_record
from orpose.teachers.weights import checkpoint_path

CALIBRATION = CameraCalibration("cam", Intrinsics(64, 48, 60.0, 60.0, 31.5, 23.5), None, False, None, 1.0)


class Source(FrameSource):
    def __init__(self, count: int):
        self._refs = [FrameRef(f"f{n:03d}", "cam", f"/x/f{n:03d}.png", None) for n in range(count)]

    def refs(self):
        return list(self._refs)

    def calibrations(self):
        return {"cam": CALIBRATION}


class LostNode(Exception):
    """What a Ray executor raises when a node dies under it (its `lost_work` says so)."""


def fake_persons(frame_number: int) -> dict[str, np.ndarray]:
    """1 to 3 persons with every field filled from the frame's number: labels that differ frame to frame."""
    rng = np.random.default_rng(frame_number)
    count = 1 + frame_number % 3
    persons = {}
    for f in PERSON_FIELDS:
        if f.name == "frame_index":
            continue
        if f.dtype is STR:
            persons[f.name] = np.array([f"rle-{frame_number}-{i}" for i in range(count)], dtype=object)
        else:
            persons[f.name] = (rng.random((count, *f.shape)) * 100).astype(f.dtype)
    return persons


class FakeDataset:
    """Yields, per batch of rows, what the assemble stage yields: frame id, shard, record, timings."""

    def __init__(
        self,
        rows: list[dict],
        reject=lambda frame_id: False,
        drop=lambda frame_id: False,
        batch: int = 4,
        lose_after: int | None = None,
        repeat: bool = False,
        persons: bool = False,
    ):
        self.rows, self.reject, self.drop, self.batch = rows, reject, drop, batch
        self.lose_after, self.repeat, self.persons = lose_after, repeat, persons

    def batches(self):
        rows = [r for r in self.rows if not self.drop(r["frame_id"])]
        if self.repeat:  # an executor that hands some frames over twice (a retried task): reversed, so late
            rows = rows + rows[::-1]
        for start in range(0, len(rows), self.batch):
            part = rows[start : start + self.batch]
            records = np.empty(len(part), dtype=object)
            for i, row in enumerate(part):
                ref = FrameRef(row["frame_id"], row["camera_id"], row["color_path"], None)
                if self.reject(row["frame_id"]):
                    error = CorruptImageError(ref.frame_id, ref.color_path, "bad")
                    records[i] = rejected_record(ref, CALIBRATION, error.reason, str(error))
                else:
                    persons = fake_persons(int(row["frame_id"][1:])) if self.persons else {}
                    records[i] = FrameRecord(frame_row(ref, CALIBRATION, STATUS_LABELLED), persons)
            if self.lose_after is not None and start >= self.lose_after:
                raise LostNode("node 10.0.0.2 died")
            yield {
                "position": np.array([r["position"] for r in part]),
                "frame_id": np.array([r["frame_id"] for r in part], dtype=object),
                "shard_index": np.array([r["shard_index"] for r in part]),
                "record": records,
                **{f"seconds_{stage}": np.zeros(len(part)) for stage in run_module.TIMED_STAGES},
            }


def make_driver(weights):
    """run_labels with an executor handed in (`engine=`) that yields what `make_dataset` makes; returns (run, the
    row lists each attempt was given). The checkpoints are stand-in files: hashed for the run's identity, never
    loaded (no model runs)."""
    attempts = []

    class FakeExecutor:
        def __init__(self, make_dataset):
            self.make_dataset = make_dataset

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def lost_work(self, error):
            return isinstance(error, LostNode)

        def log_location(self):
            return None

        def batches(self, pending):
            rows = [dict(zip(b, values)) for b in pending.iter_batches(1000) for values in zip(*b.values())]
            attempts.append([r["frame_id"] for r in rows])
            return self.make_dataset(rows, len(attempts)).batches()

    def run(
        tmp_path, frames: int, make_dataset, plan_only=False, new_run=False, source=None, retry_rejected=(), **overrides
    ):
        config = load_teacher_config("tiny", {"run.shard_size": 5, **overrides})
        for spec in (config.detector, config.keypoints, config.lifter):
            path = checkpoint_path(weights, spec.checkpoint)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"stand-in")
        return run_module.run_labels(
            config, source or Source(frames), "test", tmp_path / "run", weights_dir=weights, progress=False,
            plan_only=plan_only, new_run=new_run, engine=FakeExecutor(make_dataset), retry_rejected=retry_rejected,
        )  # fmt: skip

    return run, attempts


def committed_frames(run_dir) -> Counter:
    return Counter(f for entry in manifest_entries(run_dir) for f in entry.frame_ids)
