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

__all__ = ["DiskFullError", "is_disk_full", "disk_full_as_error"]


class DiskFullError(OrPoseError, OSError):
    """A write failed for lack of space; the message names the path and the space left."""


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
    """Around a write of `what` to `path`: an out-of-space error becomes DiskFullError naming both."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as error:
        if not is_disk_full(error):
            raise
        path = Path(path)
        raise DiskFullError(
            errno.ENOSPC,
            f"no space left to write {what} {path} ({_free_space(path.parent)}); nothing partial was kept: "
            "free some space and run the same command again (committed shards are kept)",
        ) from error
