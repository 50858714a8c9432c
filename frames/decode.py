"""Strict image decoding: a frame is either decoded whole and checked, or refused with a reason.

Hostile files never reach the decoder. A path is opened only when it is a regular file (a FIFO would
block, a device read without end), and never more bytes are read than an image of the calibrated
size could need (`max_file_bytes`). The header is read before decoding: a PNG's IHDR (size, bit
depth, color type) and a JPEG's frame header (size, precision, components) must describe the
calibrated frame, so a few-KB file declaring 60000 x 60000 pixels (a decompression bomb) is refused
without allocating its pixels. OpenCV returns None for some broken files and a half-grey image for
a truncated JPEG (it only prints "Premature end of JPEG file"), so the container is checked too: PNG
files must end with their IEND chunk and JPEG files with the EOI marker. Checks after decoding:
color is 8-bit with 3 channels, depth is 16-bit with 1 channel, and both have the calibrated size.

Not for: choosing which files make a frame (see `frames.sources`).
"""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

import cv2
import numpy as np

from orpose.frames.calibration import Intrinsics
from orpose.frames.errors import (
    TRANSIENT_ERRNOS,
    ColorFormatError,
    CorruptImageError,
    DepthFormatError,
    EmptyFileError,
    FileTooLargeError,
    FrameStoreError,
    MissingFileError,
    NotARegularFileError,
    SizeMismatchError,
)

__all__ = [
    "read_image_bytes",
    "image_header",
    "max_file_bytes",
    "decode_color",
    "decode_depth",
    "decode_depth_bytes",
    "PNG_SIGNATURE",
    "MAX_PIXELS",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # zero-length IEND chunk with its fixed CRC
_JPEG_SOI = b"\xff\xd8\xff"
_JPEG_EOI = b"\xff\xd9"


_FILE_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}
# Without a calibrated size (tools that decode any image): no more than this many pixels (a 16k x 12k image).
MAX_PIXELS = 200_000_000


def max_file_bytes(expected: Intrinsics | None, channels: int, bytes_per_sample: int) -> int:
    """The most bytes an image file of the calibrated size may hold: its raw pixels twice (a PNG stored
    without compression adds a filter byte per row and 5 bytes per 64 KB block; a JPEG is smaller than
    raw), plus 1 MiB for metadata chunks. Without a calibration, MAX_PIXELS of them."""
    pixels = expected.width * expected.height if expected is not None else MAX_PIXELS
    return 2 * pixels * channels * bytes_per_sample + 2**20


def _raise_if_the_store_failed(error: OSError, frame_id: str, path: Path) -> None:
    """An I/O error of the storage (EIO, a stale network handle, a timeout) is not the frame's: FrameStoreError."""
    if error.errno not in TRANSIENT_ERRNOS:
        return
    raise FrameStoreError(
        error.errno,
        f"frame '{frame_id}': reading {path} failed ({error.strerror or error}): the storage, not the frame",
    ) from error


def read_image_bytes(path: str | Path, frame_id: str, max_bytes: int | None = None) -> bytes:
    """The file's bytes, after checking it is a regular file of at most `max_bytes` bytes, not empty, and a
    complete PNG or JPEG."""
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer; it is refused below
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise MissingFileError(frame_id, path, "no such file") from None
    except IsADirectoryError:
        raise NotARegularFileError(frame_id, path, "is a directory, not an image file") from None
    except OSError as error:  # permission, I/O error on a network share, a socket
        _raise_if_the_store_failed(error, frame_id, path)
        raise MissingFileError(frame_id, path, f"cannot be read: {error.strerror or error}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _FILE_KINDS.get(stat.S_IFMT(info.st_mode), "not a file")
            raise NotARegularFileError(frame_id, path, f"is {kind}, not a regular image file")
        limit = max_bytes if max_bytes is not None else max_file_bytes(None, 4, 2)
        if info.st_size > limit:
            raise FileTooLargeError(
                frame_id, path, f"{info.st_size} bytes, more than an image of the calibrated size needs ({limit})"
            )
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(limit + 1)  # bounded even when the size changes under us
    except OSError as error:
        _raise_if_the_store_failed(error, frame_id, path)
        raise MissingFileError(frame_id, path, f"cannot be read: {error.strerror or error}") from None
    finally:
        os.close(fd)
    if len(data) > limit:
        raise FileTooLargeError(
            frame_id, path, f"more than {limit} bytes, more than an image of the calibrated size needs"
        )
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


# PNG color types: channels of each (0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGB + alpha)
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}
_JPEG_FRAME_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_header(data: bytes, frame_id: str, path: str | Path) -> tuple[int, int, int, int]:
    """(width, height, channels, bits per sample) from a PNG's IHDR or a JPEG's frame header, read without
    decoding; a header that cannot be read is a CorruptImageError."""
    if data.startswith(PNG_SIGNATURE):
        if len(data) < 33 or data[12:16] != b"IHDR":
            raise CorruptImageError(frame_id, path, "PNG without an IHDR chunk first")
        width, height, bits, color_type = struct.unpack(">IIBB", data[16:26])
        if color_type not in _PNG_CHANNELS or bits not in (1, 2, 4, 8, 16) or not width or not height:
            raise CorruptImageError(
                frame_id,
                path,
                f"PNG header is invalid (size {width}x{height}, bit depth {bits}, color type {color_type})",
            )
        return width, height, _PNG_CHANNELS[color_type], 8 if color_type == 3 else bits  # a palette's entries are 8-bit
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            raise CorruptImageError(frame_id, path, f"JPEG marker expected at byte {position}")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if marker in _JPEG_FRAME_MARKERS:
            if position + 10 > len(data):
                break
            bits, height, width, components = struct.unpack(">BHHB", data[position + 4 : position + 10])
            if not width or not height:
                raise CorruptImageError(frame_id, path, f"JPEG header is invalid (size {width}x{height})")
            return width, height, components, bits
        if marker == 0xDA or length < 2:  # image data before any frame header
            break
        position += 2 + length
    raise CorruptImageError(frame_id, path, "JPEG without a frame header (SOF) before its image data")


def _check_header(
    data: bytes, frame_id: str, path, expected: Intrinsics | None, what: str, channels: int, bits: int, error
) -> None:
    """Refuse, before decoding, an image whose header cannot be the calibrated frame."""
    width, height, found_channels, found_bits = image_header(data, frame_id, path)
    if expected is not None and (width, height) != (expected.width, expected.height):
        raise SizeMismatchError(
            frame_id,
            path,
            f"{what} image is {width}x{height} (its header) but the calibration says "
            f"{expected.width}x{expected.height}",
        )
    if expected is None and width * height > MAX_PIXELS:
        raise SizeMismatchError(frame_id, path, f"{what} image header declares {width}x{height} pixels")
    if (found_channels, found_bits) != (channels, bits):
        raise error(
            frame_id,
            path,
            f"{what} must be {bits}-bit with {channels} channel(s), its header says {found_bits}-bit with "
            f"{found_channels} channel(s)",
        )


def _decode(data: bytes, frame_id: str, path: str | Path) -> np.ndarray:
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as error:  # OpenCV's own limits (CV_IO_MAX_IMAGE_PIXELS) and decoder failures
        raise CorruptImageError(
            frame_id, path, f"the decoder refused it: {str(error).strip().splitlines()[-1]}"
        ) from None
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
    data = read_image_bytes(path, frame_id, max_file_bytes(expected, 3, 1))
    _check_header(data, frame_id, path, expected, "color", 3, 8, ColorFormatError)
    image = _decode(data, frame_id, path)
    channels = 1 if image.ndim == 2 else image.shape[2]
    if image.dtype != np.uint8 or channels != 3:
        raise ColorFormatError(
            frame_id, path, f"color must be 8-bit with 3 channels, got {image.dtype} with {channels} channel(s)"
        )
    _check_size(image, expected, frame_id, path, "color")
    return image


def decode_depth(path: str | Path, frame_id: str, expected: Intrinsics | None = None) -> np.ndarray:
    """An (H, W) uint16 image of raw depth counts (0 = no reading), or a FrameError."""
    return decode_depth_bytes(
        read_image_bytes(path, frame_id, max_file_bytes(expected, 1, 2)), path, frame_id, expected
    )


def decode_depth_bytes(data: bytes, path: str | Path, frame_id: str, expected: Intrinsics | None = None) -> np.ndarray:
    """`decode_depth` of a depth image's file bytes already read (`path` names it in errors)."""
    _check_header(data, frame_id, path, expected, "depth", 1, 16, DepthFormatError)
    image = _decode(data, frame_id, path)
    channels = 1 if image.ndim == 2 else image.shape[2]
    if image.dtype != np.uint16 or channels != 1:
        raise DepthFormatError(
            frame_id, path, f"depth must be 16-bit with 1 channel, got {image.dtype} with {channels} channel(s)"
        )
    _check_size(image, expected, frame_id, path, "depth")
    return image
