"""The two executors of one stage graph give the same shards (labels equal; only timestamps and
timings may differ): the bundled sample through Ray (the `sample_run` fixture, `labels run`) and
through the in-process executor, with and without the model stages fused."""

import pytest

from label_store.compare import Tolerances, compare
from label_store.inspection import verify_run
from label_store.shard import manifest_entries

# Same models and pixels; torch's thread count differs (1 per Ray actor, every core in-process),
# which may reorder float sums: 1e-3 px / 1e-4 in confidence is 1000 x below any label change.
SAME = Tolerances(
    keypoint_px=1e-3,
    confidence=1e-4,
    box_px=1e-3,
    pose3d_mm=1e-2,
    score=1e-4,
    spread_px=1e-3,
    consistency=1e-4,
    mask_iou=0.999,
    bias_px=1e-4,
)


@pytest.mark.parametrize("fused", [False, True], ids=["separate", "fused"])
def test_local_and_ray_executors_write_the_same_labels(tmp_path, label_bundled_sample, sample_run, fused):
    out = tmp_path / "local"
    result = label_bundled_sample(out, "--executor", "local", f"run.fuse_models={str(fused).lower()}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "frames: 8 processed" in result.stdout
    assert verify_run(out) == []
    comparison = compare(sample_run, out, SAME)
    assert comparison.ok, comparison.problems[:5]
    assert comparison.matched > 0 and comparison.added == comparison.removed == 0
    assert [e.frame_ids for e in manifest_entries(out)] == [e.frame_ids for e in manifest_entries(sample_run)]
