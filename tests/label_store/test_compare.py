"""The comparison behind the CI regression and `labels diff`: it sees what changed and says it."""

import copy

import numpy as np

from label_store.compare import Tolerances, compare, reference_from_run
from label_store.shard import commit_shard


def test_identical_runs_compare_clean_and_changes_are_named(tmp_path, records, provenance):
    commit_shard(tmp_path / "a", 0, records, provenance)
    reference_from_run(tmp_path / "a", tmp_path / "ref.json")
    same = compare(tmp_path / "ref.json", tmp_path / "a")
    assert same.ok and same.matched == sum(r.num_persons for r in records) and same.added == same.removed == 0

    changed = copy.deepcopy(records)
    target = next(r for r in changed if r.num_persons >= 2)
    target.persons["keypoints_2d"] = target.persons["keypoints_2d"].copy()
    target.persons["keypoints_2d"][0, 9, 0] += 3.0  # left wrist of person 0 moves 3 px
    for key in target.persons:  # the last person disappears
        target.persons[key] = target.persons[key][:-1]
    commit_shard(tmp_path / "b", 0, changed, provenance)
    diff = compare(tmp_path / "ref.json", tmp_path / "b", Tolerances(keypoint_px=1.0))
    report = "\n".join(diff.lines())
    frame = target.frame["frame_id"]
    assert not diff.ok and diff.removed == 1
    assert f"{frame} person 0 left_wrist" in report and "3.00 px (tolerance 1.0)" in report
    assert np.isclose(max(diff.keypoint_px), 3.0, atol=2e-3)  # the reference rounds to 1e-3
