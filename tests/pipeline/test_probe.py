"""`labels probe` (issue 41) at a size CI affords: the 3D student trained on ground truth beats the untrained one
by a wide margin, and a damaged label set (the 3D's left and right swapped) trains a worse student than the clean
soft set: the probe can tell good labels from bad. The 2D students (color, depth) trained on ground truth find
the keypoints that their untrained selves miss."""

import json

import pytest

from orpose.pipeline.probe import ProbeSettings, run_probe


@pytest.mark.slow
def test_the_probe_tells_ground_truth_from_untrained_and_clean_from_damaged_labels(tmp_path):
    settings = ProbeSettings(train_frames=6, test_frames=3, cameras=1, seeds=(0,), iters=200, students=("3d",))
    result = run_probe(settings, tmp_path, progress=False)
    rows = {row["label_set"]: row for row in result.students["3d"]["rows"]}
    upper = {name: row["mpjpe_upper_body_mm"]["mean"] for name, row in rows.items()}
    assert upper["untrained"] - upper["ground truth"] > 50.0, upper  # measured: about 120 mm apart
    assert upper["soft, 3D left/right swapped"] > upper["soft"] + 30.0, upper  # measured: about 110 mm apart
    assert rows["ground truth"]["recovery"] == pytest.approx(1.0)
    assert result.teacher["test_mpjpe_upper_body_mm"] is not None and result.students["3d"]["persons"]["test"] > 0
    written = json.loads((tmp_path / "probe.json").read_text())
    assert [row["label_set"] for row in written["students"]["3d"]["rows"]] == list(rows)
    assert "| ground truth |" in (tmp_path / "probe.md").read_text()
    assert (tmp_path / "probe.png").stat().st_size > 0

    # A run made elsewhere (`--run`, `--test`): the same labels and test frames give the same students' figures,
    # without a ground-truth student
    elsewhere = ProbeSettings(
        seeds=(0,), iters=200, students=("3d",), run=str(tmp_path / "train-teacher"), test=str(tmp_path / "test")
    )
    again = run_probe(elsewhere, tmp_path / "elsewhere", progress=False)
    rows_again = {row["label_set"]: row for row in again.students["3d"]["rows"]}
    assert "ground truth" not in rows_again and rows_again["soft"]["recovery"] is None
    for name in ("untrained", "soft", "hard"):
        assert rows_again[name]["mpjpe_upper_body_mm"]["mean"] == pytest.approx(upper[name], rel=1e-4), name


@pytest.mark.slow
def test_the_2d_students_trained_on_ground_truth_find_what_untrained_ones_miss(tmp_path):
    settings = ProbeSettings(
        train_frames=6, test_frames=3, cameras=1, seeds=(0,), keypoint_iters=60, students=("color", "depth"),
        damaged=False,
    )  # fmt: skip
    result = run_probe(settings, tmp_path, progress=False)
    for student in ("color", "depth"):
        table = result.students[student]
        pck = {row["label_set"]: row["PCK"]["mean"] for row in table["rows"]}
        assert pck["ground truth"] > pck["untrained"] + 0.4, (student, pck)  # measured: 0.81-0.82 against 0.07-0.12
        assert list(pck) == ["untrained", "ground truth", "soft", "hard"]
    assert result.students["color"]["teacher"]["PCK"] > 0.8  # the trained tiny teacher with ground-truth boxes
    assert (tmp_path / "students" / "color" / "ground_truth-seed0.pth").exists()


def test_the_test_scenes_are_held_out_and_students_are_known():
    with pytest.raises(ValueError, match="held out"):
        ProbeSettings(train_scene_seed=5, test_scene_seed=5)
    with pytest.raises(ValueError, match="students must be among"):
        ProbeSettings(students=("colour",))
