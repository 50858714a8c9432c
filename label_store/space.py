"""A full file system, said once and clearly: which path could not be written and how much space is left.

Writers of the run directory (`label_store.shard.commit_shard`, `label_store.plan.write_plan`) remove
their temporary files and turn an out-of-space error into `DiskFullError`; what was committed
before stays committed, and the same command, run again once space is freed, writes the rest.
"""

from __future__ import annotations

import errno
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from orpose.errors import OrPoseError

__all__ = ["DiskFullError", "StoreWriteError", "is_disk_full", "disk_full_as_error"]


class DiskFullError(OrPoseError, OSError):
    """A write failed for lack of space; the message names the path and the space left."""

    def __str__(self) -> str:  # the message alone (OSError would put "[Errno 28]" before it)
        return str(self.strerror)


class StoreWriteError(OrPoseError, OSError):
    """Any other failed write of the run directory (an I/O error, a file-size limit, a vanished folder); the
    message names the path, what was being written and the system's error."""

    def __str__(self) -> str:
        return str(self.strerror)


def is_disk_full(error: BaseException) -> bool:
    """ENOSPC or EDQUOT (quota), raised by Python, or reported inside the message of a library (HDF5, Arrow)."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(error)
    return "No space left on device" in text or "Disk quota exceeded" in text or "errno = 28" in text


def _free_space(path: Path) -> str:
    for folder in (path, *path.parents):
        if folder.exists():
            usage = shutil.disk_usage(folder)
            return f"{usage.free / 2**20:,.1f} MB free of {usage.total / 2**20:,.0f} MB at {folder}"
    return "free space unknown"


@contextmanager
def disk_full_as_error(path: str | Path, what: str) -> Iterator[None]:
    """Around a write of `what` to `path`: an out-of-space error becomes DiskFullError naming both, any other
    OSError a StoreWriteError naming both (the project's own errors pass as they are)."""
    try:
        yield
    except OrPoseError:
        raise
    except Exception as error:
        if not is_disk_full(error):
            if isinstance(error, OSError):
                raise StoreWriteError(
                    error.errno,
                    f"could not write {what} {path} ({type(error).__name__}: {error}); nothing partial was kept: "
                    "fix the cause and run the same command again (committed shards are kept)",
                ) from error
            raise
        path = Path(path)
        raise DiskFullError(
            errno.ENOSPC,
            f"no space left to write {what} {path} ({_free_space(path.parent)}); nothing partial was kept: "
            "free some space and run the same command again (committed shards are kept)",
        ) from error
