"""Typed errors for bad input frames and bad calibration files.

Every error names what the user must look at: the frame id and the file for a frame, the file and
the field for a calibration. The pipeline catches `FrameError` per frame, records its `reason`
in the run's rejected list and labels the neighbouring frames; it never catches anything wider.
"""

from __future__ import annotations

import errno
from pathlib import Path

from orpose.errors import USAGE, OrPoseError

__all__ = [
    "FrameError",
    "MissingFileError",
    "EmptyFileError",
    "CorruptImageError",
    "ColorFormatError",
    "DepthFormatError",
    "SizeMismatchError",
    "MissingDepthPairError",
    "NotARegularFileError",
    "FileTooLargeError",
    "StageError",
    "FrameStoreError",
    "TRANSIENT_ERRNOS",
    "CalibrationError",
    "SourceError",
]


class FrameError(OrPoseError):
    """A frame that cannot be labelled. `reason` is a short stable tag used to group rejections."""

    reason = "bad_frame"

    def __init__(self, frame_id: str, path: str | Path | None, detail: str):
        self.frame_id = frame_id
        self.path = str(path) if path is not None else None
        self.detail = detail
        where = f" ({self.path})" if self.path else ""
        super().__init__(f"frame {frame_id!r}{where}: {self.reason}: {detail}")


class MissingFileError(FrameError):
    reason = "missing_file"


class EmptyFileError(FrameError):
    reason = "empty_file"


class CorruptImageError(FrameError):
    """Truncated or undecodable PNG/JPEG (OpenCV alone would return None or a half-grey image)."""

    reason = "corrupt_image"


class ColorFormatError(FrameError):
    reason = "color_not_8bit_3ch"


class DepthFormatError(FrameError):
    reason = "depth_not_16bit_1ch"


class SizeMismatchError(FrameError):
    reason = "size_mismatch"


class MissingDepthPairError(FrameError):
    """The source promises color+depth pairs and this frame's depth image is absent."""

    reason = "missing_depth_pair"


class NotARegularFileError(FrameError):
    """A FIFO, a device, a socket or a directory where an image file should be: never opened for reading (a
    FIFO blocks, a device reads without end)."""

    reason = "not_a_regular_file"


class FileTooLargeError(FrameError):
    """More bytes than any image of the calibrated size could need, with headroom: never read whole."""

    reason = "file_too_large"


class StageError(FrameError):
    """A stage's own exception on this frame (a bug or an input no check foresaw), isolated to the frame:
    the rest of its batch is labelled; the traceback is in the log (`pipeline.executors`)."""

    reason = "stage_error"


# I/O errors of the storage under the frames (a network share, a disk) rather than of one frame's file: the same
# read may well succeed a moment later, so they are retried and never stored as a frame's reject reason.
TRANSIENT_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "EIO", "ESTALE", "ETIMEDOUT", "ENOTCONN", "ECONNRESET", "ECONNABORTED", "EHOSTDOWN", "EHOSTUNREACH",
        "ENETDOWN", "ENETUNREACH", "ENETRESET", "EAGAIN", "ENOMEM", "ENOLINK", "EREMOTEIO", "ECOMM",
    )
    if hasattr(errno, name)
)  # fmt: skip


class FrameStoreError(OrPoseError, OSError):
    """Reading a frame failed because of the storage, not the frame (`TRANSIENT_ERRNOS`): the batch is retried,
    and if it keeps failing the run stops; no frame is rejected for it."""


class CalibrationError(OrPoseError, ValueError):
    """A calibration file or block that is malformed; names the file and the field."""

    exit_code = USAGE

    def __init__(self, source: str | Path, field: str, detail: str):
        self.source = str(source)
        self.field = field
        self.detail = detail
        super().__init__(f"{self.source}: field {field!r}: {detail}")


class SourceError(OrPoseError, ValueError):
    """A manifest or frame tree that cannot be read as a whole (not one bad frame)."""

    exit_code = USAGE

    def __init__(self, source: str | Path, detail: str, line: int | None = None):
        self.source = str(source)
        self.line = line
        where = f"{self.source}:{line}" if line is not None else self.source
        super().__init__(f"{where}: {detail}")
