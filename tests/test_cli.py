"""The `labels` command line, run as a user runs it."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orpose.pipeline.cli import build_parser
from tests.cli import labels

FIXTURES = Path(__file__).parent / "fixtures" / "bad_frames"


# Downloads through a proxy that is not there (a closed port on this machine): every fetch fails at
# once, on a machine with a network too (where the real download would take ~1 GB).
NO_NETWORK = {
    **os.environ,
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "no_proxy": "",
    "NO_PROXY": "",
}


def test_help_lists_every_registered_command():
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    result = labels("--help")
    assert result.returncode == 0
    assert commands >= {"synth", "check-frames"}
    for command in commands:
        assert command in result.stdout


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "labels"
    if not script.exists():
        pytest.skip("not running inside the project's virtual environment")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "check-frames" in result.stdout


def test_synth_then_check_frames_on_both_sources(tmp_path):
    out = tmp_path / "sample"
    result = labels("synth", "--out", str(out), "--frames", "1", "--cameras", "2", "--width", "160", "--height", "120")
    assert result.returncode == 0, result.stderr
    assert "wrote 2 images" in result.stdout
    for source in (out / "manifest.jsonl", out, out / "calibrated_rig" / "manifest.jsonl"):
        checked = labels("check-frames", str(source))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "2 frames, 2 good, 0 rejected" in checked.stdout


def test_check_frames_names_each_rejected_frame_and_exits_nonzero():
    result = labels("check-frames", str(FIXTURES / "manifest.jsonl"))
    assert result.returncode == 1
    expected = json.loads((FIXTURES / "expected.json").read_text())
    bad = {frame: reason for frame, reason in expected.items() if reason}
    assert f"{len(expected)} frames, {len(expected) - len(bad)} good, {len(bad)} rejected" in result.stdout
    for frame, reason in bad.items():
        assert f"frame '{frame}'" in result.stdout and reason in result.stdout


def test_a_bad_calibration_is_a_clear_error_not_a_traceback(tmp_path):
    shutil.copy(FIXTURES / "manifest.jsonl", tmp_path / "manifest.jsonl")
    (tmp_path / "calibration.json").write_text(
        '{"format": "or-pose-labels/calibration", "version": 1, "cameras": {"cam1": {}}}'
    )
    result = labels("check-frames", str(tmp_path / "manifest.jsonl"))
    assert result.returncode == 2
    assert "calibration.json: field 'cameras.cam1.color': missing" in result.stderr
    assert "Traceback" not in result.stderr


def test_weights_without_network_names_files_urls_and_targets(tmp_path):
    result = labels("weights", "--teacher", "paper_x101", "--weights-dir", str(tmp_path), env=NO_NETWORK)
    assert result.returncode == 1
    assert "simple3Dbaseline_h36m-f0ad73a4_20210419.pth" in result.stderr
    assert "https://download.openmmlab.com/mmdetection/" in result.stderr
    assert str(tmp_path) in result.stderr


def test_weights_for_the_paper_teacher_offline_print_detectron2_url_and_conversion_command(tmp_path):
    result = labels("weights", "--teacher", "paper", "--weights-dir", str(tmp_path), env=NO_NETWORK)
    assert result.returncode == 1
    assert (
        "https://dl.fbaipublicfiles.com/detectron2/Misc/cascade_mask_rcnn_X_152_32x8d_FPN_IN5k_gn_dconv/18131413/"
        "model_0039999_e76410.pkl"
    ) in result.stderr
    target = tmp_path / "cascade-mask-rcnn_x152-32x8d-dconv-gn_fpn_in5k_detectron2-e76410.pth"
    assert (
        f"labels convert-detectron2 {tmp_path / 'model_0039999_e76410.pkl'} {target} --mm-config "
        "teachers/mm/cascade-mask-rcnn_x152-32x8d-dconv-gn_fpn_in5k_detectron2.py"
    ) in result.stderr
    assert not list(tmp_path.iterdir())  # nothing half-downloaded left behind


def test_weights_init_writes_loadable_seeded_checkpoints(tmp_path):
    first = labels("weights", "--teacher", "tiny", "--init", "--weights-dir", str(tmp_path / "a"))
    again = labels("weights", "--teacher", "tiny", "--init", "--weights-dir", str(tmp_path / "b"))
    assert first.returncode == 0, first.stderr
    digests = [line.split()[0] for line in first.stdout.splitlines()]
    assert len(digests) == 3 and digests == [line.split()[0] for line in again.stdout.splitlines()]  # seeded
