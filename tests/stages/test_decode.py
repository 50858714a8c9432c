"""DecodeStage: decoded color and encoded depth per row; rejected rows carry their reason and nothing else."""

import subprocess
import sys
from pathlib import Path

import numpy as np

from orpose.frames.decode import decode_depth_bytes
from orpose.frames.sources import ManifestSource
from orpose.stages.decode import DecodeStage
from orpose.stages.rows import batch_from_rows, rows_from_refs

FIXTURES = Path(__file__).parents[1] / "fixtures" / "bad_frames"


def _rows(source: ManifestSource) -> dict:
    return batch_from_rows(rows_from_refs((ref, 0) for ref in source.refs()))


def test_rows_carry_color_and_the_depth_files_bytes_or_the_reason():
    source = ManifestSource(FIXTURES / "manifest.jsonl", FIXTURES / "calibration.json")
    batch = DecodeStage(calibrations=source.calibrations())(_rows(source))
    for i, ref in enumerate(source.refs()):
        if batch["reject_reason"][i]:
            assert batch["color"][i].shape == (0, 0, 3) and batch["depth_encoded"][i] == b""
            assert ref.frame_id in batch["reject_detail"][i]
            continue
        frame = source.load(ref)
        assert (batch["color"][i] == frame.color_bgr).all()
        depth = decode_depth_bytes(batch["depth_encoded"][i], ref.depth_path, ref.frame_id)
        assert (depth == frame.depth_raw).all()
    assert sorted(batch["frame_id"][np.asarray(batch["reject_reason"]) == ""]) == ["good_a", "good_b"]
    assert batch["seconds_decode"].shape == (len(source.refs()),)


def test_the_cpu_stages_do_not_import_torch():
    # Each decode and assemble worker would carry ~300 MB of torch for nothing (measured).
    code = "import sys, stages.decode, stages.assemble; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2]
    )
    assert out.stdout.strip() == "False"
