"""`labels inspect` in one bounded pass over the shards (issue 43): its counts equal those of reading every frame
one by one, its confidence quantiles are the exact ones (to the 3 decimals it prints) while the run is small, and
past `EXACT_QUANTILES_UP_TO` persons they come from the statistics' histogram."""

import numpy as np

from orpose.joints import COCO_KEYPOINTS
from orpose.label_store.inspection import inspect_labels
from orpose.label_store.reader import LabelRun


def test_inspect_counts_every_frame_and_gives_exact_quantiles(sample_run):
    info = inspect_labels(sample_run)
    frames = list(LabelRun(sample_run))
    labelled = [f for f in frames if f.labelled]
    assert info["frames"] == len(frames) and info["labelled"] == len(labelled)
    assert sum(info["rejected"].values()) == len(frames) - len(labelled)
    assert info["persons"] == sum(len(f) for f in labelled) > 0
    assert info["hard_persons"] == sum(int(f.persons["hard_valid"].sum()) for f in labelled)
    confidences = np.concatenate([f.persons["keypoints_2d"][..., 2] for f in labelled if len(f)])
    for j, name in enumerate(COCO_KEYPOINTS):
        exact = np.quantile(confidences[:, j], [0.1, 0.5, 0.9])
        np.testing.assert_allclose(info["keypoint_confidence_q10_q50_q90"][name], exact, atol=5e-4 + 1e-9, err_msg=name)


def test_past_the_exact_limit_the_quantiles_come_from_the_histogram(sample_run, monkeypatch):
    import orpose.label_store.inspection as inspection
    from orpose.label_store.statistics import collect_statistics

    monkeypatch.setattr(inspection, "EXACT_QUANTILES_UP_TO", 0)
    info = inspection.inspect_labels(sample_run)
    histogram = collect_statistics(sample_run).confidence.quantiles([0.1, 0.5, 0.9])
    for j, name in enumerate(COCO_KEYPOINTS):
        np.testing.assert_allclose(info["keypoint_confidence_q10_q50_q90"][name], histogram[j], atol=5e-4 + 1e-9)


def _three_shards(tmp_path, records, provenance):
    from dataclasses import replace

    from orpose.label_store.index import consolidate_index
    from orpose.label_store.shard import commit_shard

    for shard in (0, 2, 5):
        renamed = [replace(r, frame={**r.frame, "frame_id": f"s{shard}/{r.frame['frame_id']}"}) for r in records]
        commit_shard(tmp_path, shard, renamed, provenance)
    consolidate_index(tmp_path)
    return tmp_path


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_verify_in_parallel_finds_what_one_process_finds(tmp_path, records, provenance):
    from orpose.label_store.inspection import verify_run
    from orpose.label_store.shard import shard_path

    run = _three_shards(tmp_path, records, provenance)
    clean = verify_run(run)
    assert clean == [f"{run}: the plan (plan/plan.json) is missing"]  # committed by hand: no plan
    _flip_a_byte(shard_path(run, 2))
    (run / "index" / "shard-00005.npz").unlink()
    problems = verify_run(run)
    assert verify_run(run, jobs=2) == problems
    assert any("shard-00002.h5: sha256 differs" in p for p in problems)
    assert any("shard-00005.npz: missing for committed shard 5" in p for p in problems)


def test_verify_a_sample_checks_that_many_shards(tmp_path, records, provenance):
    from orpose.label_store.inspection import verify_run
    from orpose.label_store.shard import shard_path

    run = _three_shards(tmp_path, records, provenance)
    _flip_a_byte(shard_path(run, 5))
    found = [any("shard-00005.h5" in p for p in verify_run(run, sample=1, seed=seed)) for seed in range(12)]
    assert any(found) and not all(found)  # one shard of three a draw: sometimes the damaged one
    assert verify_run(run, sample=1, seed=3) == verify_run(run, sample=1, seed=3)  # a seed is a draw
    assert any("shard-00005.h5" in p for p in verify_run(run, sample=3))  # every shard
