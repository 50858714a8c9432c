"""A disk that fills while a shard is written (issue 40). Before, HDF5 wrote the shard itself and a failed write
surfaced at its flush or close: the run died with SIGSEGV or with HDF5's own error text (h5py issues 914 and
2160). Now the shard is built in memory and written by our own calls, so the failure is a named error.

Both writers are run in child processes under a swept file-size limit (RLIMIT_FSIZE, what `prlimit --fsize`
sets: a write past it fails with EFBIG, as a full disk fails with ENOSPC), and `labels run` itself is run under
three limits and then without one."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from orpose.label_store.inspection import verify_run
from tests.drivers import committed_frames

ROOT = Path(__file__).parents[2]

WRITE_SHARD = """
import json, sys
from pathlib import Path
import h5py
from orpose.frames.sources import FrameRef
from orpose.label_store import shard
from orpose.label_store.schema import PROVENANCE_KEYS, STATUS_LABELLED
from orpose.stages.records import frame_row
from tests.drivers import CALIBRATION, fake_persons

records = [shard.FrameRecord(frame_row(FrameRef(f"f{n:03d}", "cam", f"/x/{n}.png", None), CALIBRATION,
                                       STATUS_LABELLED), fake_persons(n)) for n in range(64)]
provenance = {key: "x" * 200 for key in PROVENANCE_KEYS}
path, writer = Path(sys.argv[1]), sys.argv[2]
try:
    if writer == "hdf5":  # the old path: HDF5 writes the file itself
        with h5py.File(path / "shard-00000.h5", "w") as handle:
            shard._fill(handle, records, provenance, 0)
    else:
        shard.commit_shard(path, 0, records, provenance)
except Exception as error:
    print(json.dumps({"error": type(error).__name__, "message": str(error)}))
    sys.exit(1)
print(json.dumps({"error": None}))
"""


def limited(limit: int):
    def preexec():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def write_under_limit(tmp: Path, writer: str, limit: int) -> str:
    tmp.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", WRITE_SHARD, str(tmp), writer],
        cwd=ROOT, capture_output=True, text=True, timeout=120, preexec_fn=limited(limit),
    )  # fmt: skip
    if result.returncode < 0:
        return f"killed by {signal.Signals(-result.returncode).name}"
    lines = result.stdout.strip().splitlines()
    seen = json.loads(lines[-1]) if lines else {"error": "no output"}
    if seen["error"] is None:
        return "written"
    hdf5_text = "HDF5-DIAG" in result.stderr or "errno = 27" in seen["message"]
    return f"exit {result.returncode}: {seen['error']}" + (" (HDF5's own error text)" if hdf5_text else "")


def test_a_file_size_limit_mid_shard_is_a_named_error_where_hdf5_crashed_or_spoke_its_own_tongue(tmp_path):
    limits = [2_000 * k for k in range(1, 13)] + [40_000, 60_000, 90_000]
    outcomes = {"hdf5": Counter(), "ours": Counter()}
    for writer in outcomes:
        for limit in limits:
            outcomes[writer][write_under_limit(tmp_path / f"{writer}-{limit}", writer, limit)] += 1
    print(f"\nshard writes under RLIMIT_FSIZE at {len(limits)} limits from 2 kB to 90 kB:")
    for writer, counts in outcomes.items():
        print(f"  {writer:5s} " + ", ".join(f"{n} {outcome}" for outcome, n in counts.most_common()))
    assert set(outcomes["ours"]) <= {"exit 1: StoreWriteError", "written"}, outcomes["ours"]
    assert outcomes["ours"]["exit 1: StoreWriteError"] >= 10
    for folder in tmp_path.glob("ours-*"):
        if (folder / "shards").is_dir():
            assert not list((folder / "shards").glob(".*.tmp")) and not list((folder / "manifest").glob("*.json"))


@pytest.mark.slow
def test_labels_run_under_a_full_disk_stops_with_a_named_error_and_resumes_exactly_once(tmp_path):
    """The case that crashed (issue 40: SIGSEGV at 32,869 and 49,304 bytes, HDF5's text at 98,096): the bundled
    sample labelled by the tiny teacher in two-frame shards, under those file-size limits, then without one."""
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "orpose.pipeline.cli", "run", "--config", "tiny", "--executor", "local",
               "--frames", str(ROOT / "data/sample/manifest.jsonl"), "--out", str(run_dir), "--no-progress",
               "run.shard_size=2", "run.batch_size=2", "device=cpu"]  # fmt: skip
    for limit in (32_869, 49_304, 98_096):
        result = subprocess.run(
            command, cwd=tmp_path, capture_output=True, text=True, timeout=600, preexec_fn=limited(limit)
        )
        assert result.returncode == 1, (limit, result.returncode, result.stderr[-2000:])
        assert "Traceback" not in result.stderr and "HDF5-DIAG" not in result.stderr, result.stderr[-2000:]
        assert "labels run: error: could not write shard " in result.stderr and "File too large" in result.stderr
    finished = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-2000:]
    counts = committed_frames(run_dir)
    assert len(counts) == 8 and set(counts.values()) == {1}
    assert verify_run(run_dir) == []
