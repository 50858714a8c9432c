"""The data engineers' commands on a real run of the bundled sample."""

import json
import shutil
from pathlib import Path

import h5py
import pytest

from tests.cli import labels

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.slow  # one whole labelling run, shared by the module


def test_inspect_reports_counts_quantiles_and_provenance(sample_run):
    result = labels("inspect", sample_run)
    assert result.returncode == 0, result.stderr
    assert "8 frames (8 labelled, 0 rejected)" in result.stdout and "left_wrist" in result.stdout
    assert "tiny_hrnet.pth: sha256" in result.stdout and "box_score" in result.stdout
    info = json.loads(labels("inspect", sample_run, "--json").stdout)
    assert info["frames"] == 8 and info["persons"] == 32 and len(info["hard_share_per_joint"]) == 17
    assert info["keypoint_confidence_q10_q50_q90"] is None  # the index has no per-joint confidences
    info = json.loads(labels("inspect", sample_run, "--json", "--per-joint", "--no-progress").stdout)
    assert len(info["keypoint_confidence_q10_q50_q90"]) == 17


def test_verify_passes_a_sound_run_and_names_a_flipped_byte(sample_run, tmp_path):
    assert labels("verify", sample_run).returncode == 0
    copy = tmp_path / "run"
    shutil.copytree(sample_run, copy)
    shard = next((copy / "shards").glob("shard-*.h5"))
    with h5py.File(shard, "r") as handle:
        offset = handle["persons/pose3d_soft"].id.get_chunk_info(0).byte_offset
    data = bytearray(shard.read_bytes())
    data[offset + 7] ^= 0x10
    shard.write_bytes(bytes(data))
    result = labels("verify", copy)
    assert result.returncode == 1
    assert "sha256 differs from its manifest entry" in result.stdout and "pose3d_soft" in result.stdout
    (copy / "manifest" / "shard-00000.json").unlink()
    assert "planned shard 0 (8 frames) is not committed" in labels("verify", copy).stdout


def test_show_and_stats_write_pictures(sample_run, tmp_path):
    import cv2

    result = labels("show", sample_run, "--frame", "day1/cam1/000001", "-o", tmp_path / "frame.png")
    assert result.returncode == 0, result.stderr
    picture = cv2.imread(str(tmp_path / "frame.png"))
    assert picture.shape[1] > 1500 and picture.std() > 20  # three panels with content
    result = labels("stats", sample_run, "-o", tmp_path / "stats")
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (tmp_path / "stats").glob("*.png"))
    assert names == [
        "confidence_per_keypoint.png",
        "depth_consistency.png",
        "detector_score.png",
        "hard_soft_ratio.png",
        "persons_per_frame.png",
        "uncertainty.png",
    ]


def test_diff_of_a_run_with_itself_and_with_a_changed_copy(sample_run, tmp_path):
    assert labels("diff", sample_run, sample_run).returncode == 0
    from orpose.label_store.reader import LabelRun
    from orpose.label_store.schema import FRAME_FIELDS
    from orpose.label_store.shard import FrameRecord, commit_shard

    run = LabelRun(sample_run)
    records = []
    for labels_ in run:
        persons = {k: v.copy() for k, v in labels_.persons.items() if k != "frame_index"}
        if labels_.frame_id == "day1/cam1/000002":
            persons["keypoints_2d"][0, 0, 0] += 4.0
        records.append(FrameRecord({f.name: labels_.frame[f.name] for f in FRAME_FIELDS}, persons))
    prov = {k: (json.dumps(v) if k.endswith("_json") else v) for k, v in run.provenance().items()}
    commit_shard(tmp_path / "changed", 0, records, prov)
    result = labels("diff", sample_run, tmp_path / "changed")
    assert result.returncode == 1
    assert "day1/cam1/000002 person 0: keypoints_2d nose" in result.stdout and "4.00 px" in result.stdout
    # reduced precision's tolerances bound the distribution of the changes, not one keypoint's jump; fp32's do not
    assert labels("diff", sample_run, tmp_path / "changed", "--tolerances-of", "cpu:bf16").returncode == 0
    assert labels("diff", sample_run, tmp_path / "changed", "--tolerances-of", "cuda:fp32").returncode == 1
    unknown = labels("diff", sample_run, tmp_path / "changed", "--tolerances-of", "cuda:int8")
    assert unknown.returncode == 2 and "cuda:int8" in unknown.stderr and "cpu:bf16" in unknown.stderr


def test_evaluate_the_sample_run_against_its_ground_truth(sample_run):
    result = labels("evaluate", sample_run, "--gt", ROOT / "data/sample/annotations.json", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["images"] == 8 and figures["predictions"] == 32
    for group in ("box", "keypoints"):
        assert all(0.0 <= v <= 1.0 for v in figures[group].values())
    assert 0.0 <= figures["pck"]["mean"] <= 1.0
    assert figures["mpjpe_upper_body_mm"] is not None  # the generator's ground truth has 3D
    text = labels("evaluate", sample_run, "--gt", ROOT / "data/sample/annotations.json")
    assert "box AP" in text.stdout and "PCK@0.2" in text.stdout and "MPJPE upper body" in text.stdout
