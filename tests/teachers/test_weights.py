"""Where a checkpoint name resolves: the working directory first, then the installed package (the tiny
teacher's trained checkpoints ship in `orpose/data`, so a wheel labels offline as a checkout does)."""

from pathlib import Path

from orpose.configs.schema import load_teacher_config
from orpose.frames.files import sha256_file
from orpose.teachers.weights import PACKAGE_DIR, checkpoint_path, missing_checkpoints


def test_the_tiny_teacher_resolves_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_teacher_config("tiny")
    assert missing_checkpoints(config) == []
    path = checkpoint_path(config.weights_dir, config.keypoints.checkpoint)
    assert path == PACKAGE_DIR / "data" / "tiny_teacher" / "tiny" / "tiny_hrnet.pth"
    # the file shipped is the one SHA256SUMS records
    sums = dict(line.split()[::-1] for line in (PACKAGE_DIR / "data/tiny_teacher/SHA256SUMS").read_text().splitlines())
    assert sha256_file(path) == sums["tiny/tiny_hrnet.pth"]


def test_a_weights_folder_in_the_working_directory_comes_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    own = Path("data/tiny_teacher/tiny/tiny_hrnet.pth")
    own.parent.mkdir(parents=True)
    own.write_bytes(b"retrained")
    assert checkpoint_path("data/tiny_teacher", "tiny/tiny_hrnet.pth") == own
    assert checkpoint_path("data/tiny_teacher", "/abs/x.pth") == Path("/abs/x.pth")
    assert checkpoint_path("elsewhere", "tiny/tiny_hrnet.pth") == Path("elsewhere/tiny/tiny_hrnet.pth")
