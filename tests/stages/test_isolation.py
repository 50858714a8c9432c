"""Which errors are a frame's and which are nobody's (issue 40): `is_transient` on known cases, the frame store's
I/O errors kept apart from a frame's own, and a transient error retried, never isolated to a frame."""

import errno
import os

import numpy as np
import pytest

from orpose.frames import decode
from orpose.frames.errors import FrameStoreError, MissingFileError
from orpose.stages import isolation
from orpose.stages.graph import StageSpec
from orpose.stages.isolation import BrokenStageError, TransientStageError, is_transient, run_stage


class OutOfMemoryError(RuntimeError):  # the name torch.cuda.OutOfMemoryError has
    pass


@pytest.mark.parametrize(
    "error, transient",
    [
        (OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB"), True),
        (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes"), True),
        (RuntimeError("CUDA error: an illegal memory access was encountered"), True),
        (RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR"), True),
        (MemoryError(), True),
        (OSError(errno.EIO, "Input/output error"), True),
        (OSError(errno.ESTALE, "Stale file handle"), True),
        (FrameStoreError(errno.EIO, "frame 'x': the storage"), True),
        (ValueError("operands could not be broadcast together"), False),
        (RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x3 and 5x6)"), False),
        (ZeroDivisionError("division by zero"), False),
        (OSError(errno.ENOENT, "No such file or directory"), False),
        (MissingFileError("f", "/x.png", "no such file"), False),
    ],
)
def test_transient_errors_are_told_from_a_frames_own(error, transient):
    assert is_transient(error) is transient


def test_an_io_error_of_the_storage_is_not_a_missing_frame(tmp_path, monkeypatch):
    image = tmp_path / "a.png"
    image.write_bytes(b"x")

    def failing_open(path, flags, *args):
        raise OSError(errno.EIO, "Input/output error", str(path))

    real_open = os.open
    monkeypatch.setattr(decode.os, "open", failing_open)
    with pytest.raises(FrameStoreError, match=r"frame 'f1': reading .*a.png failed \(Input/output error\)"):
        decode.read_image_bytes(image, "f1")
    monkeypatch.setattr(decode.os, "open", real_open)
    with pytest.raises(MissingFileError):
        decode.read_image_bytes(tmp_path / "absent.png", "f2")


def batch_of(n: int) -> dict:
    return {
        "frame_id": np.array([f"f{i}" for i in range(n)], dtype=object),
        "reject_reason": np.array([""] * n, dtype=object),
        "reject_detail": np.array([""] * n, dtype=object),
    }


class Flaky:
    """Raises `error` on its first `failures` calls that hold a frame not yet rejected, then writes its column
    (rejected rows pass through, as the real stages do)."""

    def __init__(self, failures: int, error: BaseException):
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self, batch):
        self.calls += 1
        if self.calls <= self.failures and (batch["reject_reason"] == "").any():
            raise self.error
        n = len(batch["frame_id"])
        return dict(batch, out=np.ones(n, dtype=bool), seconds_flaky=np.zeros(n))


SPEC = StageSpec("flaky", Flaky, "model", reads=("frame_id",), writes=("out",))


def test_a_transient_error_is_retried_and_the_batch_labelled(monkeypatch):
    monkeypatch.setattr(isolation, "RETRY_PAUSE_S", 0.0)
    stage = Flaky(2, RuntimeError("CUDA error: unspecified launch failure"))
    out = run_stage(SPEC, stage, batch_of(4))
    assert stage.calls == 3 and out["reject_reason"].tolist() == [""] * 4


def test_a_persistent_transient_error_stops_without_rejecting_any_frame(monkeypatch):
    monkeypatch.setattr(isolation, "RETRY_PAUSE_S", 0.0)
    stage = Flaky(100, OSError(errno.ESTALE, "Stale file handle"))
    with pytest.raises(TransientStageError, match=r"stage 'flaky' failed 3 times on a batch of 4 frames"):
        run_stage(SPEC, stage, batch_of(4))
    assert stage.calls == 1 + isolation.TRANSIENT_RETRIES  # not bisected: no frame is blamed


def test_a_stage_failing_on_every_frame_is_broken_not_its_input():
    with pytest.raises(BrokenStageError, match=r"raised on every one of the 4 frames .*KeyError"):
        run_stage(SPEC, Flaky(100, KeyError("weights")), batch_of(4))
    # one frame alone: nothing to compare it with, so it is that frame's stage_error as before
    out = run_stage(SPEC, Flaky(100, KeyError("weights")), batch_of(1))
    assert out["reject_reason"].tolist() == ["stage_error"]
