"""Nothing lost, nothing stale, at any fault (issue 40), in the manner of SQLite's I/O-error and crash tests.

A job of 12 frames in 3 shards (the driver of `labels run` with a stand-in executor whose records carry
persons, tests/drivers.py) is planned, then labelled while every I/O call of the durable layer
(`frames.durable.IO`: opens, space reservations, writes, fsyncs, read-backs, links, renames, unlinks, directory
fsyncs) is recorded. Then, for every call k of that dry run:

- **I/O errors**: the k-th call fails with ENOSPC, then with EIO, once and persistently. The run must stop with
  the project's named error (DiskFullError, StoreWriteError: the path in the message, never a traceback from
  HDF5); the same job run again with the fault gone must label every frame exactly once, with labels equal to a
  reference run's, `verify_run` clean, the index equal to the shards, and no temporary file left.
- **Power loss** before the k-th call: the on-disk state is rebuilt from the snapshot taken after planning and
  the calls before k, in three crash states (the ones ALICE and LazyFS model): everything written kept; only
  fsynced file contents kept (the rest of each file lost); and, harsher, only fsynced contents under only the
  names a directory fsync made durable. The same job resumed from each must give the same exactly-once, equal,
  verified labels.

CI runs a fixed-seed sample of at least 150 cases (`FAULT_CASES=all` runs the whole sweep); the counts by
outcome are printed. `FAULT_DEBUG=1` prints each case before it runs (a crash then names its case).
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from orpose.errors import OrPoseError
from orpose.frames import durable
from orpose.label_store.index import load_index
from orpose.label_store.inspection import verify_run
from orpose.label_store.reader import LabelRun
from orpose.label_store.space import DiskFullError, StoreWriteError
from tests.drivers import FakeDataset, committed_frames, make_driver

FRAMES = 12  # 3 shards of 5, 5 and 2 frames (run.shard_size=5 in make_driver)
CI_CASES = 160
COMMIT_FOLDERS = ("shards", "manifest", "index")  # what the commits write; the plan is in the snapshot


# --- recording and failing the durable layer's calls ----------------------------------------------------------


@dataclass
class Call:
    name: str
    path: Path | None = None  # the file or folder the call is about
    target: Path | None = None  # link / rename
    data: bytes = b""  # write


class RecordingIO(durable.SystemIO):
    """Performs every call and records it (the file a descriptor belongs to, the bytes written)."""

    def __init__(self):
        self.calls: list[Call] = []
        self.paths: dict[int, Path] = {}

    def open(self, path, flags, mode=0o644):
        fd = super().open(path, flags, mode)
        self.paths[fd] = Path(path)
        self.calls.append(Call("open", Path(path), data=b"create" if flags & os.O_CREAT else b""))
        return fd

    def allocate(self, fd, size):
        self.calls.append(Call("allocate", self.paths[fd]))
        super().allocate(fd, size)

    def write(self, fd, data):
        written = super().write(fd, data)
        self.calls.append(Call("write", self.paths[fd], data=bytes(data[:written])))
        return written

    def fsync(self, fd):
        self.calls.append(Call("fsync", self.paths[fd]))
        super().fsync(fd)

    def close(self, fd):
        self.calls.append(Call("close", self.paths.pop(fd)))
        super().close(fd)

    def read_back(self, path):
        self.calls.append(Call("read_back", Path(path)))
        return super().read_back(path)

    def link(self, source, target):
        super().link(source, target)  # a FileExistsError is raised before it is recorded: nothing changed
        self.calls.append(Call("link", Path(source), Path(target)))

    def rename(self, source, target):
        super().rename(source, target)
        self.calls.append(Call("rename", Path(source), Path(target)))

    def unlink(self, path):
        super().unlink(path)  # (FileNotFoundError likewise)
        self.calls.append(Call("unlink", Path(path)))

    def fsync_directory(self, path):
        self.calls.append(Call("fsync_directory", Path(path)))
        super().fsync_directory(path)


class FaultyIO(durable.SystemIO):
    """The k-th call (1-based) and, when persistent, every later one fails with `code` without doing anything."""

    def __init__(self, k: int, code: int, persistent: bool):
        self.k, self.code, self.persistent, self.count = k, code, persistent, 0

    def _maybe_fail(self, name: str) -> None:
        self.count += 1
        if self.count == self.k or (self.persistent and self.count > self.k):
            raise OSError(self.code, f"{os.strerror(self.code)} (injected at call {self.count}, {name})")


for _name in (
    "open",
    "allocate",
    "write",
    "fsync",
    "close",
    "read_back",
    "link",
    "rename",
    "unlink",
    "fsync_directory",
):

    def _failing(self, *args, _name=_name, **kwargs):
        self._maybe_fail(_name)
        return getattr(durable.SystemIO, _name)(self, *args, **kwargs)

    setattr(FaultyIO, _name, _failing)


# --- the crash states: the calls before a power cut replayed onto the snapshot ----------------------------------


@dataclass
class Inode:
    data: bytearray = field(default_factory=bytearray)
    synced: bytes = b""  # the contents as of the file's last fsync


class CrashModel:
    """The commit folders as the calls before a power cut left them: names (current and as of each folder's last
    fsync) pointing at inodes (current contents and as of the last fsync)."""

    def __init__(self, run_dir: Path):
        self.names: dict[Path, dict[str, Inode]] = {}
        for folder in COMMIT_FOLDERS:
            entries = {}
            if (run_dir / folder).is_dir():
                for path in (run_dir / folder).iterdir():
                    data = path.read_bytes()
                    entries[path.name] = Inode(bytearray(data), data)
            self.names[run_dir / folder] = entries
        self.durable_names = {folder: dict(entries) for folder, entries in self.names.items()}

    def _entries(self, path: Path) -> dict[str, Inode] | None:
        return self.names.get(path.parent)

    def apply(self, call: Call) -> None:
        entries = self._entries(call.path) if call.path is not None else None
        if call.name == "fsync_directory":
            if call.path in self.names:
                self.durable_names[call.path] = dict(self.names[call.path])
            return
        if entries is None:  # a file outside the commit folders (run.json, the plan): in the snapshot already
            return
        name = call.path.name
        if call.name == "open" and call.data == b"create":
            entries[name] = Inode()
        elif call.name == "write":
            entries[name].data += call.data
        elif call.name == "fsync":
            entries[name].synced = bytes(entries[name].data)
        elif call.name == "link":
            self._entries(call.target)[call.target.name] = entries[name]
        elif call.name == "rename":
            self._entries(call.target)[call.target.name] = entries.pop(name)
        elif call.name == "unlink":
            entries.pop(name, None)

    def materialize(self, run_dir: Path, state: str) -> None:
        """Write the commit folders as they would be after the power cut, in crash state `state`."""
        for folder, current in self.names.items():
            entries = self.durable_names[folder] if state == "durable names and synced data" else current
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            for name, inode in entries.items():
                data = bytes(inode.data) if state == "everything written" else inode.synced
                (folder / name).write_bytes(data)


CRASH_STATES = ("everything written", "synced data", "durable names and synced data")


# --- the job, the checks -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """`run(run_dir)`: the 12-frame job (planned, labelled, committed, its index consolidated)."""
    run, _ = make_driver(tmp_path_factory.mktemp("weights"))
    return lambda run_dir, **kw: run(run_dir, FRAMES, lambda rows, attempt: FakeDataset(rows, persons=True), **kw)


def labels_of(run_dir: Path) -> dict[str, tuple[dict, dict]]:
    return {frame.frame_id: (frame.frame, frame.persons) for frame in LabelRun(run_dir / "run")}


@pytest.fixture(scope="module")
def reference(job, tmp_path_factory):
    """The reference labels, the snapshot after planning, and the durable layer's calls of the labelling."""
    reference_dir = tmp_path_factory.mktemp("reference")
    job(reference_dir)
    snapshot = tmp_path_factory.mktemp("snapshot")
    job(snapshot, plan_only=True)
    dry = tmp_path_factory.mktemp("dry")
    shutil.copytree(snapshot, dry, dirs_exist_ok=True)
    recording = RecordingIO()
    with swapped_io(recording):
        job(dry)
    return {"labels": labels_of(reference_dir), "snapshot": snapshot, "calls": recording.calls, "recorded_in": dry}


class swapped_io:
    def __init__(self, io):
        self.io = io

    def __enter__(self):
        self.saved, durable.IO = durable.IO, self.io

    def __exit__(self, *exc):
        durable.IO = self.saved


def check_complete(run_dir: Path, expected: dict) -> list[str]:
    """What is wrong with a finished run: frames not exactly once, labels unlike the reference, a failed verify,
    an index unlike the shards, a temporary file left."""
    problems = []
    counts = committed_frames(run_dir / "run")
    if len(counts) != FRAMES or set(counts.values()) != {1}:
        problems.append(f"frames committed: {sorted(counts.items())}")
    labels = labels_of(run_dir)
    if sorted(labels) != sorted(expected):
        problems.append(f"frames read: {sorted(labels)}")
    for frame_id, (frame, persons) in expected.items():
        got = labels.get(frame_id)
        try:
            np.testing.assert_equal(got, (frame, persons))
        except AssertionError:
            problems.append(f"{frame_id}: labels differ from the reference")
    problems += verify_run(run_dir / "run")
    index = load_index(run_dir / "run")
    if sorted(index.frame_id.astype(str)) != sorted(expected):
        problems.append("the run index does not list the frames")
    elif any(int(p) != len(expected[f.decode()][1]["box"]) for f, p in zip(index.frame_id, index.persons)):
        problems.append("the run index's person counts differ from the shards")
    left = [p.name for folder in (*COMMIT_FOLDERS, "plan") for p in (run_dir / "run" / folder).glob(".*.tmp")]
    if left:
        problems.append(f"temporary files left: {left}")
    return problems


def fault_case(job, reference, tmp: Path, k: int, code: int, persistent: bool) -> tuple[str, list[str]]:
    shutil.copytree(reference["snapshot"], tmp)
    outcome = "completed despite the fault"
    try:
        with swapped_io(FaultyIO(k, code, persistent)):
            job(tmp)
    except (DiskFullError, StoreWriteError) as error:
        outcome = f"stopped: {type(error).__name__}"
        if str(tmp) not in str(error):
            return outcome, [f"the error does not name a file of the run: {error}"]
    except OrPoseError as error:
        outcome = f"stopped: {type(error).__name__}"
    except Exception as error:  # noqa: BLE001 - any other exception is the finding
        return "crashed", [f"{type(error).__name__}: {error}"]
    job(tmp)  # the fault gone: the same command again
    return outcome, check_complete(tmp, reference["labels"])


def rebased(call: Call, old: Path, new: Path) -> Call:
    """The call as if made in `new` (the dry run was recorded in `old`)."""
    move = lambda path: new / path.relative_to(old) if path is not None else None  # noqa: E731
    return Call(call.name, move(call.path), move(call.target), call.data)


def crash_case(job, reference, tmp: Path, k: int, state: str) -> tuple[str, list[str]]:
    shutil.copytree(reference["snapshot"], tmp)
    model = CrashModel(tmp / "run")
    for call in reference["calls"][:k]:
        model.apply(rebased(call, reference["recorded_in"], tmp))
    model.materialize(tmp / "run", state)
    summary = job(tmp)
    return f"resumed ({summary.shards_done_before} shards kept)", check_complete(tmp, reference["labels"])


def all_cases(calls: int) -> list[tuple]:
    faults = [("fault", k, code, persistent) for k in range(1, calls + 1) for code in (errno.ENOSPC, errno.EIO)
              for persistent in (False, True)]  # fmt: skip
    crashes = [("crash", k, state) for k in range(calls + 1) for state in CRASH_STATES]
    return faults + crashes


def test_every_io_call_of_a_commit_failed_or_cut_resumes_to_exactly_once_and_equal_labels(job, reference, tmp_path):
    calls = reference["calls"]
    assert len(calls) > 40 and {c.name for c in calls} >= {"write", "fsync", "link", "rename", "fsync_directory"}
    cases = all_cases(len(calls))
    if os.environ.get("FAULT_CASES") != "all":
        cases = random.Random(40).sample(cases, CI_CASES)
    started, outcomes, failures = time.perf_counter(), Counter(), []
    for n, case in enumerate(cases):
        if os.environ.get("FAULT_DEBUG"):
            print("CASE", n, case, flush=True)
        tmp = tmp_path / f"case{n}"
        if case[0] == "fault":
            _, k, code, persistent = case
            outcome, problems = fault_case(job, reference, tmp, k, code, persistent)
            label = f"call {k} ({calls[k - 1].name}) fails with {errno.errorcode[code]}, " + (
                "persistently" if persistent else "once"
            )
        else:
            _, k, state = case
            outcome, problems = crash_case(job, reference, tmp, k, state)
            label = f"power cut before call {k + 1}, {state}"
        outcomes[f"{case[0]}: {outcome}"] += 1
        if problems:
            failures.append(f"{label}: {outcome}: {'; '.join(problems[:3])}")
        shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.perf_counter() - started
    print(f"\n{len(cases)} fault cases ({len(calls)} I/O calls in a 3-shard job) in {seconds:.0f} s:")
    for outcome, count in sorted(outcomes.items()):
        print(f"  {count:4d}  {outcome}")
    assert failures == [], "\n".join(failures[:20])
