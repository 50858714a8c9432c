"""`labels probe` (issue 41) at a size CI affords: the 3D student trained on ground truth beats the untrained one
by a wide margin, and a damaged label set (the 3D's left and right swapped) trains a worse student than the clean
soft set: the probe can tell good labels from bad."""

import json

import pytest

from orpose.pipeline.probe import ProbeSettings, run_probe


@pytest.mark.slow
def test_the_probe_tells_ground_truth_from_untrained_and_clean_from_damaged_labels(tmp_path):
    settings = ProbeSettings(train_frames=6, test_frames=3, cameras=1, seeds=(0,), iters=200)
    result = run_probe(settings, tmp_path, progress=False)
    rows = {row["label_set"]: row for row in result.rows}
    upper = {name: row["mpjpe_upper_body_mm"]["mean"] for name, row in rows.items()}
    assert upper["untrained"] - upper["ground truth"] > 50.0, upper  # measured: about 120 mm apart
    assert upper["soft, 3D left/right swapped"] > upper["soft"] + 30.0, upper  # measured: about 110 mm apart
    assert rows["ground truth"]["recovery"] == pytest.approx(1.0)
    assert result.teacher["test_mpjpe_upper_body_mm"] is not None and result.persons["test"] > 0
    written = json.loads((tmp_path / "probe.json").read_text())
    assert [row["label_set"] for row in written["rows"]] == list(rows)
    assert "| ground truth |" in (tmp_path / "probe.md").read_text()


def test_the_test_scenes_are_held_out():
    with pytest.raises(ValueError, match="held out"):
        ProbeSettings(train_scene_seed=5, test_scene_seed=5)
