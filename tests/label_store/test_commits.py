"""A run's files stay consistent with its shards (issue 40): a torn shard is labelled again, never trusted; what
`--new-run` discards takes the index and the calibration with it; the consolidated index never describes shards
that changed under it; an adopted shard is committed from its own content. The driver of `labels run` with a
stand-in executor (tests/drivers.py)."""

import json

import numpy as np
import pytest

from orpose.frames.calibration import CameraCalibration, Intrinsics, load_calibration
from orpose.label_store.dataset import RunSource
from orpose.label_store.index import load_index
from orpose.label_store.inspection import verify_run
from orpose.label_store.schema import STATUS_LABELLED, STATUS_REJECTED
from orpose.label_store.shard import manifest_entries, read_manifest_entry
from tests.drivers import FakeDataset, Source, committed_frames, make_driver


@pytest.fixture
def job(tmp_path_factory):
    run, _ = make_driver(tmp_path_factory.mktemp("weights"))
    return lambda tmp, frames=12, **kw: run(tmp, frames, lambda rows, attempt: FakeDataset(rows, persons=True), **kw)


def test_a_shard_shorter_than_its_entry_records_is_labelled_again_not_trusted(tmp_path, job, capsys):
    job(tmp_path)
    shard = tmp_path / "run" / "shards" / "shard-00001.h5"
    entry = read_manifest_entry(tmp_path / "run" / "manifest" / "shard-00001.json")
    assert entry.size == shard.stat().st_size  # the commit point records the size
    shard.write_bytes(shard.read_bytes()[: entry.size // 2])  # a torn write the file system did not report
    summary = job(tmp_path)
    err = capsys.readouterr().err
    assert "shard-00001.h5: " in err and "bytes on disk" in err and "labelled again" in err
    assert summary.shards_done_before == 2 and summary.shards_committed == 1
    counts = committed_frames(tmp_path / "run")
    assert len(counts) == 12 and set(counts.values()) == {1}
    assert verify_run(tmp_path / "run") == []


def test_leftover_temporary_files_are_removed_at_resume(tmp_path, job):
    job(tmp_path, plan_only=True)
    for folder in ("shards", "manifest", "index"):
        (tmp_path / "run" / folder).mkdir(exist_ok=True)
        (tmp_path / "run" / folder / ".shard-00000.h5.123.abc.tmp").write_bytes(b"half")
    job(tmp_path)
    assert list((tmp_path / "run").rglob("*.tmp")) == []


class OtherCameras(Source):
    def calibrations(self):
        return {"cam": CameraCalibration("cam", Intrinsics(64, 48, 99.0, 99.0, 31.5, 23.5), None, False, None, 1.0)}


def test_new_run_discards_the_index_and_the_calibration_with_the_shards(tmp_path, job):
    job(tmp_path)  # 12 frames, focal length 60
    job(tmp_path, frames=7, new_run=True, source=OtherCameras(7))
    run = tmp_path / "run"
    assert load_calibration(run / "calibration.json")["cam"].color.fx == 99.0  # not the old source's 60
    index = load_index(run)
    assert len(index) == 7 and sorted(p.name for p in (run / "index").iterdir()) == [
        "frames.parquet",
        "index.npz",
        "persons.parquet",
        "shard-00000.npz",
        "shard-00001.npz",
    ]
    assert RunSource(run).cameras_of("cam")[0].fx == 99.0  # the intrinsics every item of a student carries


def test_a_relabelled_shard_is_never_described_by_the_old_consolidated_index(tmp_path, tmp_path_factory):
    run, _ = make_driver(tmp_path_factory.mktemp("weights"))
    run(tmp_path, 12, lambda rows, attempt: FakeDataset(rows, persons=True))
    run_dir = tmp_path / "run"
    before = load_index(run_dir)
    assert (run_dir / "index" / "index.npz").exists() and (before.status[5:10] == STATUS_LABELLED).all()
    # a damaged shard deleted as ShardReadError advises (its file and its entry), then labelled again: this time
    # its frames are rejected, so the set of shards is the same and only their content changed
    (run_dir / "manifest" / "shard-00001.json").unlink()
    (run_dir / "shards" / "shard-00001.h5").unlink()
    run(
        tmp_path,
        12,
        lambda rows, attempt: FakeDataset(rows, persons=True, reject=lambda f: "f005" <= f <= "f009"),
        **{"run.max_rejected_fraction": 1.0},
    )
    after = load_index(run_dir)
    assert (after.status[5:10] == STATUS_REJECTED).all() and (after.persons[5:10] == 0).all()
    assert np.array_equal(after.shards, before.shards)


def test_an_adopted_shard_is_committed_from_the_file_it_adopts(tmp_path, tmp_path_factory):
    """A writer killed between linking a shard and writing its entry: the resume adopts the file (it verifies and
    holds the planned frames) and builds the entry and the index part from that file, not from the records of
    this attempt, which may differ (here every frame is rejected this time)."""
    run, _ = make_driver(tmp_path_factory.mktemp("weights"))
    run(tmp_path, 12, lambda rows, attempt: FakeDataset(rows, persons=True))
    run_dir = tmp_path / "run"
    first = read_manifest_entry(run_dir / "manifest" / "shard-00001.json")
    (run_dir / "manifest" / "shard-00001.json").unlink()
    (run_dir / "index" / "shard-00001.npz").unlink()
    run(
        tmp_path,
        12,
        lambda rows, attempt: FakeDataset(rows, persons=True, reject=lambda f: True),
        **{"run.max_rejected_fraction": 1.0},
    )
    adopted = read_manifest_entry(run_dir / "manifest" / "shard-00001.json")
    assert adopted.rejected == {} and adopted.num_persons == first.num_persons and adopted.sha256 == first.sha256
    index = load_index(run_dir)
    assert (index.status[5:10] == STATUS_LABELLED).all() and index.persons[5:10].sum() == first.num_persons
    assert json.loads((run_dir / "manifest" / "shard-00001.json").read_text())["size"] == first.size
    assert len(manifest_entries(run_dir)) == 3 and verify_run(run_dir) == []


def test_retry_rejected_labels_again_only_the_shards_holding_that_reason(tmp_path, tmp_path_factory):
    run, attempts = make_driver(tmp_path_factory.mktemp("weights"))
    overrides = {"run.max_rejected_fraction": 1.0}
    run(tmp_path, 12, lambda rows, attempt: FakeDataset(rows, persons=True, reject=lambda f: f == "f006"), **overrides)
    assert read_manifest_entry(tmp_path / "run" / "manifest" / "shard-00001.json").rejected == {"f006": "corrupt_image"}
    summary = run(
        tmp_path,
        12,
        lambda rows, attempt: FakeDataset(rows, persons=True),  # the cause fixed
        retry_rejected=("corrupt_image",),
        **overrides,
    )
    assert attempts[-1] == [f"f{n:03d}" for n in range(5, 10)]  # shard 1 only
    assert summary.shards_done_before == 2 and not summary.frames_rejected
    assert all(not entry.rejected for entry in manifest_entries(tmp_path / "run"))
    counts = committed_frames(tmp_path / "run")
    assert len(counts) == 12 and set(counts.values()) == {1} and verify_run(tmp_path / "run") == []
