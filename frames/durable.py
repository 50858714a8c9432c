"""Durable writes: a file appears under its name whole, with the bytes that were meant, and stays there after a
crash or a power cut, or it does not appear at all.

Every file of a run directory is written through `write_durable` (shards, manifest entries, index parts, the
plan's files, `run.json`, `calibration.json`; not the run lock, whose heartbeat is about liveness only). The
protocol, the one SQLite, LevelDB and etcd came to after the crash-consistency studies (ALICE, OSDI 2014;
etcd issue 6368):

1. create a temporary file beside the target, exclusively (`O_EXCL`: two writers never share one);
2. reserve its space (`posix_fallocate`, where the file system has it): a full disk fails here, before a byte
   is written, as a plain `OSError` of our own call;
3. write every byte, in a loop (a `write` may be short);
4. `fsync` the file: its bytes are on the device before it has a name;
5. read it back and compare its size and sha256 with what was meant (a torn write the file system did not
   report is caught here, not by a student);
6. give it its name: `link` (exclusive: fails if the name exists; the temporary name is then removed) or
   `rename` (replaces);
7. `fsync` the directory: the new name itself is durable (a name that was never synced can vanish at a power
   cut even though the file's bytes were synced).

On any error the temporary file is removed and the error raised as it is (the caller names what it was
writing: `label_store.space.disk_full_as_error`). Leftover temporary files of a killed writer start with `.`
and end with `.tmp`; `remove_temporaries` deletes them at resume.

All I/O goes through `IO`, one object whose methods are the system calls used, so that the fault-injection
tests (tests/faults/test_commit_faults.py) fail or record each call in turn.
"""

from __future__ import annotations

import errno
import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "IO",
    "SystemIO",
    "DurableFile",
    "write_durable",
    "fsync_directory",
    "fsync_file",
    "rename_durable",
    "remove",
    "remove_temporaries",
    "TEMP_SUFFIX",
]

TEMP_SUFFIX = ".tmp"
_WRITE_CHUNK = 1 << 24  # bytes per write call: short writes are looped over anyway


class SystemIO:
    """The system calls a durable write makes, as methods (see the module docstring)."""

    def open(self, path: Path, flags: int, mode: int = 0o644) -> int:
        return os.open(path, flags, mode)

    def allocate(self, fd: int, size: int) -> None:
        if size and hasattr(os, "posix_fallocate"):
            try:
                os.posix_fallocate(fd, 0, size)
            except OSError as error:  # file systems without it (some network ones): the writes will tell
                if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                    raise

    def write(self, fd: int, data: memoryview) -> int:
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def close(self, fd: int) -> None:
        os.close(fd)

    def read_back(self, path: Path) -> tuple[int, str]:
        """(size, sha256) of the file as the file system now gives it."""
        digest, size = hashlib.sha256(), 0
        with open(path, "rb") as handle:
            while block := handle.read(1 << 22):
                digest.update(block)
                size += len(block)
        return size, digest.hexdigest()

    def link(self, source: Path, target: Path) -> None:
        os.link(source, target)

    def rename(self, source: Path, target: Path) -> None:
        os.replace(source, target)

    def unlink(self, path: Path) -> None:
        os.unlink(path)

    def fsync_directory(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


IO = SystemIO()  # replaced by the fault-injection tests, never by the product


@dataclass(frozen=True)
class DurableFile:
    """What `write_durable` wrote: the path, its size and sha256, and whether this call gave it its name (an
    exclusive write finds the name taken when another writer got there first)."""

    path: Path
    size: int
    sha256: str
    created: bool


def fsync_directory(path: str | Path) -> None:
    """Make the names in `path` durable (after a link, a rename or an unlink)."""
    IO.fsync_directory(Path(path))


def fsync_file(path: str | Path) -> None:
    """Make the bytes of a file another library wrote (Arrow's Parquet writer) durable."""
    fd = IO.open(Path(path), os.O_RDONLY)
    try:
        IO.fsync(fd)
    finally:
        IO.close(fd)


def rename_durable(source: str | Path, target: str | Path) -> None:
    """Rename a whole file or folder written and synced beforehand, and make the new name durable."""
    IO.rename(Path(source), Path(target))
    IO.fsync_directory(Path(target).parent)


def remove(path: str | Path) -> bool:
    """Delete a file through `IO` (so the fault tests see it); True if it was there. The caller syncs the folder
    where the removal must be durable."""
    try:
        IO.unlink(Path(path))
        return True
    except FileNotFoundError:
        return False


def temporary_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}")


def write_durable(path: str | Path, data: bytes | bytearray | memoryview, exclusive: bool = False) -> DurableFile:
    """Write `data` to `path` durably (the module docstring's steps). `exclusive`: never replace an existing
    `path` (the result's `created` is then False and nothing was written under that name)."""
    path = Path(path)
    view = memoryview(data).cast("B")
    expected = hashlib.sha256(view).hexdigest()
    temporary = temporary_name(path)
    fd = IO.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        try:
            IO.allocate(fd, len(view))
            written = 0
            while written < len(view):
                written += IO.write(fd, view[written : written + _WRITE_CHUNK])
            IO.fsync(fd)
        finally:
            IO.close(fd)
        size, digest = IO.read_back(temporary)
        if (size, digest) != (len(view), expected):
            raise OSError(
                errno.EIO,
                f"{path}: the file system gave back {size} bytes (sha256 {digest[:12]}) after writing "
                f"{len(view)} bytes (sha256 {expected[:12]}); the disk or the file system lost data",
            )
        created = True
        if exclusive:
            try:
                IO.link(temporary, path)
            except FileExistsError:
                created = False
            IO.unlink(temporary)
        else:
            IO.rename(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)  # not through IO: cleaning up must not be failed by the test that failed the write
        except FileNotFoundError:
            pass
        raise
    IO.fsync_directory(path.parent)
    return DurableFile(path, len(view), expected, created)


def remove_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files a killed writer left in `folder` (`.NAME.PID.ID.tmp`); returns them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        if entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX) and entry.is_file():
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed
