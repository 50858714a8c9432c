"""Streamed run statistics: histogram quantiles, counts per day and camera, the bounded gallery."""

from pathlib import Path

import numpy as np
import pytest

from orpose.label_store.reader import ShardLabels
from orpose.label_store.schema import STATUS_LABELLED, STATUS_REJECTED
from orpose.label_store.statistics import Histogram, RunStatistics, day_of, person_uncertainty


def test_histogram_quantiles_match_numpy_to_a_bin_width():
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 1, size=(5000, 2)) ** np.array([1.0, 3.0])  # two channels, different shapes
    histogram = Histogram(0, 1, 1000, channels=2)
    for chunk in np.array_split(values, 7):  # streamed in pieces: same counts as all at once
        histogram.add(chunk)
    q = [0.05, 0.25, 0.5, 0.75, 0.95]
    expected = np.quantile(values, q, axis=0).T
    assert np.abs(histogram.quantiles(q) - expected).max() <= 1e-3 + 1e-9
    assert histogram.total().tolist() == [5000, 5000]


def test_histogram_counts_outside_the_range_and_nan_apart():
    histogram = Histogram(0, 10, 10)
    histogram.add(np.array([-1.0, 0.0, 9.99, 10.0, 10.5, 1e9, np.nan]))
    assert histogram.counts[0, 0] == 2  # below the range counts in the first bin
    assert histogram.counts[0, 9] == 2  # 10.0 is the last bin's right edge
    assert histogram.above.tolist() == [2] and histogram.missing.tolist() == [1]
    assert histogram.quantiles([1.0])[0, 0] == 10.0  # a quantile above the range reads as its top
    assert np.isnan(Histogram(0, 1, 4).quantiles([0.5])).all()  # empty


def test_day_of_reads_the_day_component_of_frame_id_or_path():
    assert day_of("day3/cam1/000001") == "day3"
    assert day_of("cam1_000001", "/data/mvor/day2/cam1/color/000001.png") == "day2"
    assert day_of("or1-2024-05-01/000001", "/data/or1/000001.png") == ""
    assert day_of("today/cam1/1") == ""  # a component must start with 'day'


def test_person_uncertainty_is_one_minus_mean_confidence():
    keypoints = np.zeros((2, 17, 3), np.float32)
    keypoints[0, :, 2] = 1.0
    keypoints[1, :8, 2] = 0.5
    assert person_uncertainty(keypoints) == pytest.approx([0.0, 1 - 4 / 17])


def _shard(frames: list[tuple[str, str, int, list[float]]]) -> ShardLabels:
    """A hand-made shard: per frame (frame id, camera, status, mean confidence of each person)."""
    persons = [(i, c) for i, (_, _, _, confs) in enumerate(frames) for c in confs]
    n = len(persons)
    keypoints = np.zeros((n, 17, 3), np.float32)
    keypoints[:, :, 2] = [[c] for _, c in persons]
    hard_mask = keypoints[..., 2] > 0.35
    offsets = np.concatenate([[0], np.cumsum([len(f[3]) for f in frames])])
    return ShardLabels(
        path=Path("shard.h5"),
        frames={
            "frame_id": np.array([f[0] for f in frames], object),
            "camera_id": np.array([f[1] for f in frames], object),
            "color_path": np.array([f"/x/{f[0]}.png" for f in frames], object),
            "status": np.array([f[2] for f in frames], np.int8),
            "reject_reason": np.array(["" if f[2] == STATUS_LABELLED else "corrupt_image" for f in frames], object),
            "reject_detail": np.array([f"{f[0]}: truncated" if f[2] else "" for f in frames], object),
        },
        persons={
            "frame_index": np.array([i for i, _ in persons], np.int32),
            "score": np.full(n, 0.9, np.float32),
            "keypoints_2d": keypoints,
            "keypoint_spread": np.full((n, 17), 2.0, np.float32),
            "hard_mask": hard_mask,
            "hard_valid": hard_mask.sum(1) >= 4,
            "depth_consistency": np.full((n, 17), 0.8, np.float32),
            "depth_flag": np.zeros((n, 17), np.int8),
        },
        person_offset=offsets,
        provenance={"config_hash": "abc", "code_version": "git:1"},
    )


def test_run_statistics_count_per_day_and_camera_and_keep_the_least_confident():
    stats = RunStatistics(gallery_size=3, max_rejected=1)
    stats.add(
        _shard(
            [
                ("day1/cam1/1", "cam1", STATUS_LABELLED, [0.9, 0.2]),
                ("day1/cam1/2", "cam1", STATUS_REJECTED, []),
                ("day1/cam2/1", "cam2", STATUS_LABELLED, [0.5]),
            ]
        )
    )
    stats.add(
        _shard(
            [
                ("day2/cam1/1", "cam1", STATUS_LABELLED, [0.1, 0.95, 0.3]),
                ("day2/cam1/2", "cam1", STATUS_REJECTED, []),
                ("day2/cam1/3", "cam1", STATUS_LABELLED, []),
            ]
        )
    )
    assert stats.frames == 6 and stats.labelled == 4 and stats.persons == 6 and stats.shards == 2
    day1 = stats.groups[("day1", "cam1")]
    assert (day1.frames, day1.labelled, day1.rejected, day1.persons, day1.hard_persons) == (2, 1, 1, 2, 1)
    assert day1.keypoints == 34 and day1.hard_keypoints == 17
    assert stats.groups[("day2", "cam1")].persons == 3
    assert stats.rejected_by_reason == {"corrupt_image": 2}
    assert [r["frame_id"] for r in stats.rejected] == ["day1/cam1/2"]  # only max_rejected kept with details
    assert dict(stats.persons_per_frame) == {2: 1, 1: 1, 3: 1, 0: 1}
    # least confident first, across shards; at most gallery_size kept
    picked = [(g.frame_id, g.person, round(1 - g.uncertainty, 2)) for g in stats.gallery()]
    assert picked == [("day2/cam1/1", 0, 0.1), ("day1/cam1/1", 1, 0.2), ("day2/cam1/1", 2, 0.3)]
    # hard share per joint: persons with confidence > 0.35 (0.9, 0.5, 0.95) of 6
    assert stats.hard_fraction_per_joint() == pytest.approx(np.full(17, 0.5))
    assert stats.provenances == {("abc", "git:1"): 2}


def _run_of_three_shards(tmp_path, records, provenance):
    from dataclasses import replace

    from orpose.label_store.index import consolidate_index
    from orpose.label_store.shard import commit_shard

    rng = np.random.default_rng(0)

    def varied(record, prefix):  # the tiny teacher's persons are all soft: some made hard, differently per shard
        persons = dict(record.persons)
        if record.num_persons:
            persons["hard_mask"] = rng.random(persons["hard_mask"].shape) < 0.6
            persons["hard_valid"] = persons["hard_mask"].sum(1) >= 10
        return replace(record, frame={**record.frame, "frame_id": f"{prefix}/{record.frame['frame_id']}"},
                       persons=persons)  # fmt: skip

    for shard in (0, 1, 2):
        prefix = f"day{shard % 2 + 1}/s{shard}"  # two days
        commit_shard(tmp_path, shard, [varied(r, prefix) for r in records], provenance)
    consolidate_index(tmp_path)
    return tmp_path


def test_counts_from_the_index_equal_counts_from_every_shard(tmp_path, records, provenance):
    from orpose.label_store.statistics import collect_statistics

    run = _run_of_three_shards(tmp_path, records, provenance)
    streamed = collect_statistics(run)
    indexed = collect_statistics(run, sample=3)  # every shard read, but the counts from the index
    assert indexed.sampled == (3, 3, 0) and streamed.sampled is None
    assert {k: vars(g) for k, g in indexed.groups.items()} == {k: vars(g) for k, g in streamed.groups.items()}
    assert 0 < streamed.hard_persons < streamed.persons
    assert len(indexed.groups) == 4 and indexed.rejected_by_reason == streamed.rejected_by_reason
    assert indexed.rejected == streamed.rejected and indexed.persons_per_frame == streamed.persons_per_frame
    np.testing.assert_array_equal(indexed.score.counts, streamed.score.counts)
    np.testing.assert_array_equal(indexed.hard_per_joint, streamed.hard_per_joint)
    np.testing.assert_array_equal(indexed.confidence.counts, streamed.confidence.counts)

    def picked(stats):  # the shards hold the same persons: ties are broken differently, so compare what was picked
        return sorted((round(g.uncertainty, 5), g.frame_id.split("/", 2)[2], g.person) for g in stats.gallery())

    assert picked(indexed) == picked(streamed) and len(picked(indexed)) == min(24, streamed.persons)

    one = collect_statistics(run, sample=1, seed=4)  # the whole run's counts, one shard's distributions
    assert one.sampled == (1, 3, 4) and one.persons == streamed.persons and one.shards == 1
    assert one.confidence.total()[0] == streamed.persons // 3  # the three shards hold the same persons
