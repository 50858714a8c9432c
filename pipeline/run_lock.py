"""One driver per run directory: `driver.lock` names the live run that holds it.

Two drivers labelling one run directory would each plan and commit the same shards: the commit
protocol keeps the labels exactly-once, but the work is done twice and the summaries lie. So a run
takes `RUN_DIR/driver.lock` before any work, and a second `labels run` on that directory is refused
at once, naming the holder (host, pid, start time).

A lock left by a driver that was killed is taken over safely:
- on the same host, when its pid no longer runs;
- from another host (a run directory on shared storage), when its heartbeat (rewritten every
  `heartbeat_s` by a thread of the holder) is older than `stale_after_s`.
Creating the lock is atomic (`O_CREAT | O_EXCL`); a takeover first renames the stale lock to a
unique name and checks that it moved the stale one (else it puts the fresh one back), so of
drivers taking over at once one succeeds (tested with four processes racing).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from orpose.errors import OrPoseError

__all__ = ["RunLockedError", "RunLock", "acquire_run_lock", "LOCK_NAME"]

LOCK_NAME = "driver.lock"


class RunLockedError(OrPoseError, RuntimeError):
    """Another live driver holds the run directory."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, OSError):
        return {}  # being written, or damaged: treated as held until its heartbeat is stale


@dataclass
class RunLock:
    """A held lock: released by `release()` or as a context manager."""

    path: Path
    token: str
    heartbeat_s: float
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def _write(self, started: str) -> None:
        temporary = self.path.with_name(f".{LOCK_NAME}.{self.token}.tmp")
        temporary.write_text(
            json.dumps(
                {
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "started": started,
                    "heartbeat": time.time(),
                    "token": self.token,
                }
            )
            + "\n"
        )
        os.replace(temporary, self.path)

    def _beat(self, started: str) -> None:
        while not self._stop.wait(self.heartbeat_s):
            holder = _read(self.path)
            if not holder or holder.get("token") != self.token:
                return  # taken over (our heartbeat had stopped): never write over the new holder
            self._write(started)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        holder = _read(self.path)
        if holder and holder.get("token") == self.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _describe(holder: dict) -> str:
    if not holder:
        return "a driver whose lock file is being written"
    beat = holder.get("heartbeat")
    age = f", last heartbeat {time.time() - beat:.0f} s ago" if isinstance(beat, (int, float)) else ""
    return f"host {holder.get('host')!r}, pid {holder.get('pid')}, started {holder.get('started')}{age}"


def _stale(holder: dict | None, stale_after_s: float) -> bool:
    if holder is None:
        return True
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        return not _pid_alive(holder["pid"])
    beat = holder.get("heartbeat")
    return isinstance(beat, (int, float)) and time.time() - beat > stale_after_s


def acquire_run_lock(run_dir: str | Path, stale_after_s: float = 120.0, heartbeat_s: float = 15.0) -> RunLock:
    """Take RUN_DIR/driver.lock, or raise RunLockedError naming the live holder (module docstring)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    lock = RunLock(path, uuid.uuid4().hex, heartbeat_s)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    for _ in range(3):
        try:
            descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read(path)
            if not _stale(holder, stale_after_s):
                raise RunLockedError(
                    f"{run_dir} is being labelled by another driver ({_describe(holder)}); wait for it, or stop it. "
                    f"A lock left by a killed driver ({path}) is taken over by itself: on this host once its pid is "
                    f"gone, from another host once its heartbeat is {stale_after_s:.0f} s old."
                ) from None
            aside = path.with_name(f".{LOCK_NAME}.stale.{lock.token}")
            try:  # the stale lock moves aside under a unique name: of two takers, one wins the rename
                os.rename(path, aside)
            except FileNotFoundError:
                continue
            if (_read(aside) or {}).get("token") != (holder or {}).get("token"):
                try:  # another taker's fresh lock was moved, not the stale one: put it back
                    os.link(aside, path)
                except FileExistsError:
                    pass
            aside.unlink(missing_ok=True)
            continue
        os.close(descriptor)
        lock._write(started)
        lock._thread = threading.Thread(target=lock._beat, args=(started,), name="run-lock-heartbeat", daemon=True)
        lock._thread.start()
        return lock
    raise RunLockedError(f"{run_dir}: could not take {path} (other drivers are taking it at the same moment)")
