"""`labels inspect` from the run index (issue 43): its counts and distributions equal those of reading every frame
one by one and it opens no shard but the first (for the provenance); with --per-joint, one bounded pass over the
shards gives each joint's exact confidence quantiles (to the 3 decimals it prints) while the run is small, and past
`EXACT_QUANTILES_UP_TO` persons they come from the statistics' histogram. `labels verify` in parallel and on a
sample."""

import h5py
import numpy as np

from orpose.joints import COCO_KEYPOINTS
from orpose.label_store.inspection import inspect_labels
from orpose.label_store.reader import LabelRun


def test_inspect_reads_the_index_and_counts_what_every_frame_holds(tmp_path, records, provenance, monkeypatch):
    run = _three_shards(tmp_path, records, provenance)
    opened = []
    real = h5py.File
    monkeypatch.setattr(h5py, "File", lambda path, *a, **k: opened.append(str(path)) or real(path, *a, **k))
    info = inspect_labels(run)
    assert len(set(opened)) <= 1  # the first shard's provenance, nothing else
    monkeypatch.setattr(h5py, "File", real)
    frames = list(LabelRun(run))
    labelled = [f for f in frames if f.labelled]
    persons = [f.persons for f in labelled if len(f)]
    assert info["frames"] == len(frames) and info["labelled"] == len(labelled)
    rejected = [f.frame["reject_reason"] for f in frames if not f.labelled]
    assert info["rejected"] == {r: rejected.count(r) for r in set(rejected)} and rejected
    assert info["persons"] == sum(len(f) for f in labelled) > 0
    assert info["hard_persons"] == sum(int(f.persons["hard_valid"].sum()) for f in labelled)
    assert info["persons_per_frame"] == {n: [len(f) for f in labelled].count(n) for n in {len(f) for f in labelled}}
    scores = np.concatenate([p["score"] for p in persons])
    np.testing.assert_allclose(info["score_q10_q50_q90"], np.quantile(scores, [0.1, 0.5, 0.9]), atol=5e-4 + 1e-9)
    means = np.concatenate([p["keypoints_2d"][..., 2].mean(-1) for p in persons])
    np.testing.assert_allclose(info["confidence_mean_q10_q50_q90"], np.quantile(means, [0.1, 0.5, 0.9]), atol=6e-4)
    hard = np.concatenate([p["hard_mask"] for p in persons]).mean(0)
    np.testing.assert_allclose(list(info["hard_share_per_joint"].values()), hard, atol=5e-4 + 1e-9)
    assert info["keypoint_confidence_q10_q50_q90"] is None


def test_per_joint_inspection_gives_exact_quantiles(sample_run):
    info = inspect_labels(sample_run, per_joint=True)
    labelled = [f for f in LabelRun(sample_run) if f.labelled]
    confidences = np.concatenate([f.persons["keypoints_2d"][..., 2] for f in labelled if len(f)])
    for j, name in enumerate(COCO_KEYPOINTS):
        exact = np.quantile(confidences[:, j], [0.1, 0.5, 0.9])
        np.testing.assert_allclose(info["keypoint_confidence_q10_q50_q90"][name], exact, atol=5e-4 + 1e-9, err_msg=name)


def test_past_the_exact_limit_the_quantiles_come_from_the_histogram(sample_run, monkeypatch):
    import orpose.label_store.inspection as inspection
    from orpose.label_store.statistics import collect_statistics

    monkeypatch.setattr(inspection, "EXACT_QUANTILES_UP_TO", 0)
    info = inspection.inspect_labels(sample_run, per_joint=True)
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
