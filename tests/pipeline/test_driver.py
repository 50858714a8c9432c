"""The driver of `labels run` without Ray or models: its retry loop, RunError, the stop on too many
rejected frames in the middle of a run, and how it joins a cluster. The dataset Ray would build is
replaced by one that yields records as the assemble stage would."""

import os
import re
import shutil
import subprocess

import pytest

import orpose.pipeline.run as run_module
from orpose.label_store.inspection import verify_run
from orpose.label_store.shard import manifest_entries
from orpose.pipeline.executors import start_ray
from tests.drivers import FakeDataset, committed_frames, make_driver


@pytest.fixture
def driver(tmp_path_factory):
    return make_driver(tmp_path_factory.mktemp("weights"))  # apart from the run: a test may run on a tiny file system


def test_frames_lost_in_one_attempt_are_labelled_by_the_next(tmp_path, driver):
    run, attempts = driver
    lost = {"f007"}
    summary = run(tmp_path, 12, lambda rows, attempt: FakeDataset(rows, drop=lambda f: attempt == 1 and f in lost))
    assert len(attempts) == 2 and attempts[1] == [f"f{n:03d}" for n in range(5, 10)]  # only shard 1 again
    assert summary.shards_committed == 3 and set(committed_frames(tmp_path / "run").values()) == {1}
    assert len(committed_frames(tmp_path / "run")) == 12


def test_a_shard_that_never_completes_stops_the_run_with_run_error(tmp_path, driver):
    run, attempts = driver
    with pytest.raises(
        run_module.RunError,
        match=r"1 shards could not be completed after 3 attempts \(first: 1\); "
        "run the same command again",
    ):
        run(tmp_path, 12, lambda rows, attempt: FakeDataset(rows, drop=lambda f: f == "f007"))
    assert len(attempts) == 3 and sorted(e.index for e in manifest_entries(tmp_path / "run")) == [0, 2]


def test_too_many_rejected_frames_stop_the_run_in_its_middle(tmp_path, driver):
    run, attempts = driver
    with pytest.raises(run_module.RunError, match=r"rejected .* > run.max_rejected_fraction = 20 %.*corrupt_image"):
        run(
            tmp_path,
            200,
            lambda rows, attempt: FakeDataset(rows, reject=lambda f: int(f[1:]) % 2 == 0),
            **{"run.max_rejected_fraction": 0.2},
        )
    committed = committed_frames(tmp_path / "run")
    assert 0 < len(committed) <= 52 < 200  # stopped after the first 50 frames, not after all 200
    assert len(attempts) == 1


def test_the_cluster_address_comes_from_the_argument_else_from_ray_address(monkeypatch):
    import ray

    calls = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    assert start_ray(None, 7.5) is True
    assert calls[-1]["address"] == "ray://head:10001" and "num_cpus" not in calls[-1]  # the cluster's own resources
    assert start_ray("ray://other:10001", 7.5) and calls[-1]["address"] == "ray://other:10001"
    monkeypatch.delenv("RAY_ADDRESS")
    start_ray(None, 7.5)
    # an instance of its own even where `ray start` left a cluster's address on this machine
    assert calls[-1]["address"] == "local" and calls[-1]["num_cpus"] >= 8
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    assert start_ray(None, 7.5) is False  # a Ray the caller started is left to the caller


def test_the_local_executor_refuses_a_cluster_address():
    from orpose.pipeline.executors import make_executor

    with pytest.raises(ValueError, match="--address names a Ray cluster"):
        make_executor("local", None, None, 8, address="ray://head:10001")


def test_work_lost_with_a_node_is_labelled_again_by_the_next_attempt(tmp_path, driver, capsys):
    run, attempts = driver
    summary = run(tmp_path, 12, lambda rows, attempt: FakeDataset(rows, lose_after=8 if attempt == 1 else None))
    # 8 frames came back before the loss: shard 0 (f000-f004) was committed, shards 1 and 2 are labelled again
    assert len(attempts) == 2 and attempts[1] == [f"f{n:03d}" for n in range(5, 12)]
    assert set(committed_frames(tmp_path / "run").values()) == {1} and len(committed_frames(tmp_path / "run")) == 12
    assert summary.lost_work == ["attempt 1: LostNode: node 10.0.0.2 died"]
    assert "attempt 1 of 3 lost work (LostNode: node 10.0.0.2 died)" in capsys.readouterr().err


def test_an_error_that_is_not_lost_work_stops_the_run_as_it_is(tmp_path, driver):
    run, attempts = driver

    class Broken(FakeDataset):
        def batches(self):
            raise ZeroDivisionError("a bug in a stage")
            yield

    with pytest.raises(ZeroDivisionError, match="a bug in a stage"):
        run(tmp_path, 12, lambda rows, attempt: Broken(rows))
    assert len(attempts) == 1


def test_frames_handed_over_twice_are_committed_once_in_source_order(tmp_path, driver):
    run, attempts = driver
    summary = run(tmp_path, 12, lambda rows, attempt: FakeDataset(rows, repeat=True, batch=5))
    assert len(attempts) == 1 and summary.frames_labelled == 12 and summary.shards_committed == 3
    entries = manifest_entries(tmp_path / "run")
    assert [list(e.frame_ids) for e in entries] == [[f"f{n:03d}" for n in range(s, min(s + 5, 12))] for s in (0, 5, 10)]


def test_a_full_disk_stops_the_run_naming_the_path_and_the_free_space_and_a_rerun_completes(
    tmp_path, driver, monkeypatch
):
    """ENOSPC injected at the write of the second shard's bytes, after part of the file was written."""
    import errno

    from orpose.frames import durable
    from orpose.label_store.space import DiskFullError

    run, attempts = driver
    real_io = durable.IO

    class FullAtTheSecondShard(durable.SystemIO):
        def write(self, fd, data):
            if "shard-00001.h5" in os.readlink(f"/proc/self/fd/{fd}"):
                os.write(fd, bytes(data[:100]))  # what a write cut off by a full disk leaves
                raise OSError(errno.ENOSPC, "No space left on device")
            return real_io.write(fd, data)

    monkeypatch.setattr(durable, "IO", FullAtTheSecondShard())
    with pytest.raises(DiskFullError) as error:
        run(tmp_path, 12, lambda rows, attempt: FakeDataset(rows, batch=5))
    message = str(error.value)
    assert f"no space left to write shard {tmp_path / 'run' / 'shards' / 'shard-00001.h5'}" in message
    assert re.search(r"[\d.,]+ MB free of [\d,]+ MB at ", message) and "run the same command again" in message
    assert len(attempts) == 1  # a full disk is not retried
    run_dir = tmp_path / "run"
    assert sorted(p.name for p in (run_dir / "shards").iterdir()) == ["shard-00000.h5"]  # no partial, no temp file
    assert sorted(p.name for p in (run_dir / "manifest").iterdir()) == ["shard-00000.json"]

    monkeypatch.setattr(durable, "IO", real_io)  # space freed
    summary = run(tmp_path, 12, lambda rows, attempt: FakeDataset(rows, batch=5))
    assert summary.shards_done_before == 1 and summary.shards_committed == 2
    counts = committed_frames(run_dir)
    assert len(counts) == 12 and set(counts.values()) == {1}
    assert verify_run(run_dir) == []


@pytest.fixture
def small_filesystem(tmp_path):
    """A 2 MiB tmpfs: a real file system that fills up (needs root and mount; skipped elsewhere)."""
    folder = tmp_path / "small"
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root; the injected ENOSPC test covers the logic")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_real_full_file_system_is_reported_and_a_rerun_after_freeing_space_completes(
    small_filesystem, driver, monkeypatch
):
    run, attempts = driver
    ballast = small_filesystem / "ballast"
    ballast.write_bytes(b"\0" * (2 * 1024 * 1024 - 96 * 1024))  # leave ~96 KB: the plan and a shard or two fit
    from orpose.label_store.space import DiskFullError

    with pytest.raises(DiskFullError, match=r"no space left to write .* MB free of 2 MB at "):
        run(small_filesystem, 60, lambda rows, attempt: FakeDataset(rows, batch=5))
    run_dir = small_filesystem / "run"
    leftovers = [p.name for folder in ("shards", "manifest", ".") for p in (run_dir / folder).glob(".*tmp*")]
    assert leftovers == []
    committed = {e.index for e in manifest_entries(run_dir)}
    assert sorted(p.name for p in (run_dir / "shards").glob("*.h5")) == [f"shard-{i:05d}.h5" for i in sorted(committed)]
    ballast.unlink()
    run(small_filesystem, 60, lambda rows, attempt: FakeDataset(rows, batch=5))
    counts = committed_frames(run_dir)
    assert len(counts) == 60 and set(counts.values()) == {1}
    assert verify_run(run_dir) == []


def test_plan_only_writes_the_plan_and_counts_what_is_pending_without_an_executor(tmp_path, driver):
    run, attempts = driver
    summary = run(tmp_path, 12, lambda rows, attempt: FakeDataset(rows), plan_only=True)
    assert attempts == [] and not summary.model_work and (tmp_path / "run" / "plan" / "plan.json").exists()
    assert (summary.planned_frames, summary.shards_total, summary.pending_frames) == (12, 3, 12)
    assert "pending: 12 frames in 3 shards (--plan-only: no model was loaded)" in summary.lines()
    with pytest.raises(run_module.RunError):  # commits shard 0 only
        run(tmp_path, 12, lambda rows, attempt: FakeDataset(rows, drop=lambda f: f >= "f005"))
    again = run(tmp_path, 12, lambda rows, attempt: FakeDataset(rows), plan_only=True)
    assert (again.shards_done_before, again.pending_frames) == (1, 7)
