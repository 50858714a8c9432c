"""Strict image decoding: a frame is either decoded whole and checked, or refused with a reason.

OpenCV returns None for some broken files and a half-grey image for a truncated JPEG (it only
prints "Premature end of JPEG file"), so the container is checked before decoding: PNG files
must end with their IEND chunk and JPEG files with the EOI marker. Checks after decoding: color
is 8-bit with 3 channels, depth is 16-bit with 1 channel, and both have the calibrated size.

Not for: choosing which files make a frame (see `frames.sources`).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from frames.calibration import Intrinsics
from frames.errors import (
    ColorFormatError,
    CorruptImageError,
    DepthFormatError,
    EmptyFileError,
    MissingFileError,
    SizeMismatchError,
)

__all__ = ["read_image_bytes", "decode_color", "decode_depth", "decode_depth_bytes", "PNG_SIGNATURE"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # zero-length IEND chunk with its fixed CRC
_JPEG_SOI = b"\xff\xd8\xff"
_JPEG_EOI = b"\xff\xd9"


def read_image_bytes(path: str | Path, frame_id: str) -> bytes:
    """The file's bytes, after checking it exists, is not empty and is a complete PNG or JPEG."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MissingFileError(frame_id, path, "no such file") from None
    except IsADirectoryError:
        raise MissingFileError(frame_id, path, "is a directory, not an image file") from None
    except OSError as error:  # permission, I/O error on a network share
        raise MissingFileError(frame_id, path, f"cannot be read: {error.strerror or error}") from None
    if not data:
        raise EmptyFileError(frame_id, path, "file has 0 bytes")
    if data.startswith(PNG_SIGNATURE):
        if not data.endswith(_PNG_IEND):
            raise CorruptImageError(frame_id, path, f"truncated PNG: no IEND chunk at the end ({len(data)} bytes)")
    elif data.startswith(_JPEG_SOI):
        if not data.rstrip(b"\x00").endswith(_JPEG_EOI):
            raise CorruptImageError(frame_id, path, f"truncated JPEG: no end-of-image marker ({len(data)} bytes)")
    else:
        raise CorruptImageError(frame_id, path, f"not a PNG or JPEG file (starts with {data[:8]!r})")
    return data


def _decode(data: bytes, frame_id: str, path: str | Path) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise CorruptImageError(frame_id, path, "the decoder rejected the data (corrupt image content)")
    return image


def _check_size(image: np.ndarray, expected: Intrinsics | None, frame_id: str, path, what: str) -> None:
    if expected is None:
        return
    height, width = image.shape[:2]
    if (width, height) != (expected.width, expected.height):
        raise SizeMismatchError(
            frame_id,
            path,
            f"{what} image is {width}x{height} but the calibration says {expected.width}x{expected.height}",
        )


def decode_color(path: str | Path, frame_id: str, expected: Intrinsics | None = None) -> np.ndarray:
    """An (H, W, 3) uint8 BGR image (OpenCV and mmdet order), or a FrameError."""
    image = _decode(read_image_bytes(path, frame_id), frame_id, path)
    channels = 1 if image.ndim == 2 else image.shape[2]
    if image.dtype != np.uint8 or channels != 3:
        raise ColorFormatError(
            frame_id, path, f"color must be 8-bit with 3 channels, got {image.dtype} with {channels} channel(s)"
        )
    _check_size(image, expected, frame_id, path, "color")
    return image


def decode_depth(path: str | Path, frame_id: str, expected: Intrinsics | None = None) -> np.ndarray:
    """An (H, W) uint16 image of raw depth counts (0 = no reading), or a FrameError."""
    return decode_depth_bytes(read_image_bytes(path, frame_id), path, frame_id, expected)


def decode_depth_bytes(data: bytes, path: str | Path, frame_id: str, expected: Intrinsics | None = None) -> np.ndarray:
    """`decode_depth` of a depth image's file bytes already read (`path` names it in errors)."""
    image = _decode(data, frame_id, path)
    channels = 1 if image.ndim == 2 else image.shape[2]
    if image.dtype != np.uint16 or channels != 1:
        raise DepthFormatError(
            frame_id, path, f"depth must be 16-bit with 1 channel, got {image.dtype} with {channels} channel(s)"
        )
    _check_size(image, expected, frame_id, path, "depth")
    return image
