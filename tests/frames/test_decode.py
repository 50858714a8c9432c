"""Hostile image files are refused before decoding, with a reason, in bounded time and memory: a PNG whose
header declares 60000 x 60000 pixels (a decompression bomb of a few KB), a FIFO, a device, a file larger
than any image of the calibrated size, and headers that cannot be the calibrated frame."""

import os
import resource
import shutil
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import pytest

from orpose.frames.calibration import Intrinsics
from orpose.frames.decode import decode_color, decode_depth, image_header, read_image_bytes
from orpose.frames.errors import (
    ColorFormatError,
    DepthFormatError,
    FileTooLargeError,
    NotARegularFileError,
    SizeMismatchError,
)

ROOT = Path(__file__).parents[2]
SAMPLE = ROOT / "data" / "sample"
COLOR = SAMPLE / "day1/cam1/color/000001.png"
DEPTH = SAMPLE / "day1/cam1/depth/000001.png"


def with_ihdr(png: bytes, width: int, height: int, bits: int | None = None, color_type: int | None = None) -> bytes:
    """The PNG with its IHDR fields replaced and its CRC recomputed (a valid header, lying about the pixels)."""
    fields = bytearray(png[16:29])
    struct.pack_into(">II", fields, 0, width, height)
    if bits is not None:
        fields[8] = bits
    if color_type is not None:
        fields[9] = color_type
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + bytes(fields)) & 0xFFFFFFFF)
    return png[:16] + bytes(fields) + crc + png[33:]


def intrinsics_of(path: Path) -> Intrinsics:
    width, height, _, _ = image_header(path.read_bytes(), "x", path)
    return Intrinsics(fx=500.0, fy=500.0, cx=width / 2, cy=height / 2, width=width, height=height)


def test_a_decompression_bomb_is_refused_from_its_header_without_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(with_ihdr(COLOR.read_bytes(), 60000, 60000))
    assert bomb.stat().st_size < 2_000_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(SizeMismatchError, match=r"60000x60000 \(its header\) but the calibration says"):
        decode_color(bomb, "f1", intrinsics_of(COLOR))
    with pytest.raises(SizeMismatchError, match="header declares 60000x60000"):  # no calibration: a pixel cap
        decode_color(bomb, "f1")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 50  # 60000 x 60000 x 3 bytes would be 10 GB


def test_a_fifo_a_device_and_a_directory_are_never_read(tmp_path):
    fifo = tmp_path / "frame.png"
    os.mkfifo(fifo)
    result = {}
    thread = threading.Thread(target=lambda: result.update(error=_error_of(read_image_bytes, fifo, "f1")), daemon=True)
    thread.start()
    thread.join(timeout=10)  # opening a FIFO for reading would wait for a writer for ever
    assert not thread.is_alive() and isinstance(result["error"], NotARegularFileError), result
    assert "a FIFO" in str(result["error"]) and str(fifo) in str(result["error"])
    with pytest.raises(NotARegularFileError, match="a character device"):
        read_image_bytes("/dev/zero", "f2")  # reads without end
    with pytest.raises(NotARegularFileError, match="a directory"):
        read_image_bytes(tmp_path, "f3")


def _error_of(function, *args):
    try:
        function(*args)
    except Exception as error:  # noqa: BLE001 (the test inspects it)
        return error
    return None


def test_a_file_larger_than_any_calibrated_image_is_not_read(tmp_path):
    huge = tmp_path / "huge.png"
    with huge.open("wb") as out:  # sparse: 8 GB that occupy no disk
        out.write(COLOR.read_bytes()[:33])
        out.truncate(8 * 2**30)
    with pytest.raises(FileTooLargeError, match=r"8589934592 bytes, more than an image of the calibrated size needs"):
        decode_color(huge, "f1", intrinsics_of(COLOR))


def test_headers_that_cannot_be_the_calibrated_frame(tmp_path):
    color = intrinsics_of(COLOR)
    grey = tmp_path / "grey.png"
    grey.write_bytes(with_ihdr(COLOR.read_bytes(), color.width, color.height, color_type=0))
    with pytest.raises(ColorFormatError, match="its header says 8-bit with 1 channel"):
        decode_color(grey, "f1", color)
    depth = intrinsics_of(DEPTH)
    eight_bit = tmp_path / "depth8.png"
    eight_bit.write_bytes(with_ihdr(DEPTH.read_bytes(), depth.width, depth.height, bits=8))
    with pytest.raises(DepthFormatError, match="its header says 8-bit with 1 channel"):
        decode_depth(eight_bit, "f1", depth)
    assert decode_depth(DEPTH, "f1", depth).shape == (depth.height, depth.width)  # the real one still decodes


def test_check_frames_lists_both_found_cases_among_good_frames(tmp_path):
    """The issue's two cases in one source: `labels check-frames` names each bad frame with its reason, checks
    every frame after them, prints no traceback, and states its peak memory."""
    source = tmp_path / "sample"
    shutil.copytree(SAMPLE, source)
    bomb = source / "day1/cam1/color/000002.png"
    bomb.write_bytes(with_ihdr(bomb.read_bytes(), 60000, 60000))
    fifo = source / "day1/cam2/color/000003.png"
    fifo.unlink()
    os.mkfifo(fifo)
    result = subprocess.run(
        [sys.executable, "-m", "orpose.pipeline.cli", "check-frames", str(source / "manifest.jsonl")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "8 frames, 6 good, 2 rejected (peak memory of this process" in result.stdout, result.stdout
    assert "'day1/cam1/000002'" in result.stdout and "size_mismatch" in result.stdout
    assert "'day1/cam2/000003'" in result.stdout and "not_a_regular_file: is a FIFO" in result.stdout
    peak = float(result.stdout.split("peak memory of this process ")[1].split(" MB")[0])
    print(f"check-frames peak memory: {peak:.0f} MB")
    assert peak < 1000
