"""One driver per run directory, tested with real processes: a live holder is named and refused;
a lock left by a killed driver is taken over (same host: pid gone; other host: heartbeat stale)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orpose.pipeline.run_lock import LOCK_NAME, RunLockedError, acquire_run_lock

ROOT = Path(__file__).parents[2]
HOLDER = """
import sys, time
from orpose.pipeline.run_lock import acquire_run_lock
lock = acquire_run_lock(sys.argv[1], heartbeat_s=0.2)
print("held", flush=True)
time.sleep(600)
"""


def hold_in_another_process(run_dir: Path) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_driver_is_refused_naming_the_live_holder(tmp_path):
    holder = hold_in_another_process(tmp_path / "run")
    try:
        with pytest.raises(RunLockedError) as error:
            acquire_run_lock(tmp_path / "run")
        message = str(error.value)
        assert f"pid {holder.pid}" in message and repr(socket.gethostname()) in message and "started 20" in message
        first = json.loads((tmp_path / "run" / LOCK_NAME).read_text())["heartbeat"]
        time.sleep(0.6)
        assert json.loads((tmp_path / "run" / LOCK_NAME).read_text())["heartbeat"] > first  # the holder's heartbeat
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_killed_driver_on_this_host_is_taken_over(tmp_path):
    holder = hold_in_another_process(tmp_path / "run")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (tmp_path / "run" / LOCK_NAME).exists()  # left behind
    with acquire_run_lock(tmp_path / "run") as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    assert not (tmp_path / "run" / LOCK_NAME).exists()  # released on exit


def test_another_hosts_lock_is_taken_over_only_once_its_heartbeat_is_stale(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    other = {"host": "node-b", "pid": 4242, "started": "2026-01-01T00:00:00+00:00", "token": "t"}
    (run_dir / LOCK_NAME).write_text(json.dumps({**other, "heartbeat": time.time()}))
    with pytest.raises(RunLockedError, match="host 'node-b', pid 4242"):
        acquire_run_lock(run_dir, stale_after_s=60)
    (run_dir / LOCK_NAME).write_text(json.dumps({**other, "heartbeat": time.time() - 61}))
    acquire_run_lock(run_dir, stale_after_s=60).release()


def test_two_drivers_taking_over_one_stale_lock_at_once_leave_one_holder(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / LOCK_NAME).write_text(
        json.dumps({"host": "node-b", "pid": 1, "started": "x", "token": "old", "heartbeat": time.time() - 1000})
    )
    racer = """
import sys, time
from orpose.pipeline.run_lock import acquire_run_lock, RunLockedError
time.sleep(float(sys.argv[2]) - time.time())
try:
    lock = acquire_run_lock(sys.argv[1], stale_after_s=60, heartbeat_s=0.1)
    print("won", flush=True)
    time.sleep(3)
except RunLockedError:
    print("refused", flush=True)
"""
    start = str(time.time() + 2.0)
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", racer, str(run_dir), start], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outcomes = sorted(p.communicate(timeout=60)[0].strip() for p in racers)
    assert outcomes.count("won") == 1, outcomes


def test_labels_run_on_a_held_run_directory_is_refused_at_once(tmp_path, tiny_weights):
    holder = hold_in_another_process(tmp_path / "run")
    try:
        started = time.perf_counter()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "orpose.pipeline.cli",
                "run",
                "--config",
                "tiny",
                "--frames",
                str(ROOT / "data/sample/manifest.jsonl"),
                "--out",
                str(tmp_path / "run"),
                "--weights-dir",
                str(tiny_weights),
                "--no-progress",
                "device=cpu",
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=300,
        )
        assert result.returncode == 1 and f"pid {holder.pid}" in result.stderr, result.stderr[-2000:]
        assert "is being labelled by another driver" in result.stderr and time.perf_counter() - started < 60
        assert not (tmp_path / "run" / "plan").exists()  # refused before planning
    finally:
        holder.kill()
        holder.wait()
