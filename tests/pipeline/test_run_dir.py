"""A run directory's identity and plan: another teacher setup is refused, --new-run starts over,
a source whose frames changed is refused, the run's own settings may change."""

import json

import pytest

from orpose.configs.schema import load_teacher_config
from orpose.frames.sources import FrameRef, FrameSource
from orpose.label_store.plan import PLAN_DIR, pending_frames
from orpose.pipeline.run_dir import RunMismatchError, prepare_run_dir

CHECKPOINTS = {"tiny/tiny_cascade-mask-rcnn.pth": "aa", "tiny/tiny_hrnet.pth": "bb", "tiny/tiny_lifter.pth": "cc"}


class refs(FrameSource):
    """A source of `count` frames without a fingerprint (a re-run lists it again)."""

    def __init__(self, count: int, prefix: str = "f"):
        self._refs = [FrameRef(f"{prefix}{n:03d}", "cam", f"/x/{prefix}{n:03d}.png", None) for n in range(count)]

    def refs(self):
        return list(self._refs)

    def calibrations(self):
        return {}


def shards_of(plan) -> list[list[str]]:
    return [ids for _, ids in plan.frame_ids()]


def plan_files(run_dir) -> dict:
    return {p.name: p.read_bytes() for p in sorted((run_dir / PLAN_DIR).iterdir())}


def config(**overrides):
    return load_teacher_config("tiny", {"run.shard_size": 4, **overrides})


def test_a_fresh_run_plans_every_frame_in_source_order(tmp_path):
    plan = prepare_run_dir(tmp_path, config(), CHECKPOINTS, "src", refs(10))
    assert [len(s) for s in shards_of(plan)] == [4, 4, 2] and shards_of(plan)[0][0] == "f000"
    assert plan.num_frames == 10 and plan.num_shards == 3
    assert pending_frames(tmp_path, plan).shards.tolist() == [0, 1, 2]
    again = prepare_run_dir(
        tmp_path, config(**{"run.shard_size": 8, "run.batch_size": 2}), CHECKPOINTS, "src", refs(10)
    )
    assert again == plan  # run settings do not decide labels, and the plan is kept


@pytest.mark.parametrize(
    "change, words",
    [
        (dict(overrides={"thresholds.box_score": 0.9}), "config.thresholds.box_score: 0.5 in the run, 0.9 now"),
        (
            dict(checkpoints={**CHECKPOINTS, "tiny/tiny_hrnet.pth": "dd"}),
            "checkpoint tiny/tiny_hrnet.pth: 'bb' in the run, 'dd' now",
        ),
        (dict(source="other"), "source: 'src' in the run, 'other' now"),
    ],
)
def test_another_teacher_setup_is_refused_naming_what_differs(tmp_path, change, words):
    prepare_run_dir(tmp_path, config(), CHECKPOINTS, "src", refs(6))
    before = (tmp_path / "run.json").read_text(), plan_files(tmp_path)
    with pytest.raises(RunMismatchError) as error:
        prepare_run_dir(
            tmp_path,
            config(**change.get("overrides", {})),
            change.get("checkpoints", CHECKPOINTS),
            change.get("source", "src"),
            refs(6),
        )
    assert words in str(error.value) and "--new-run" in str(error.value)
    assert ((tmp_path / "run.json").read_text(), plan_files(tmp_path)) == before  # nothing touched


def test_new_run_discards_the_old_labels_and_plans_again(tmp_path):
    prepare_run_dir(tmp_path, config(), CHECKPOINTS, "src", refs(6))
    for part in ("shards", "manifest"):
        (tmp_path / part).mkdir()
        (tmp_path / part / "shard-00000.x").write_text("old")
    plan = prepare_run_dir(
        tmp_path, config(**{"thresholds.box_score": 0.9}), CHECKPOINTS, "src", refs(3, "g"), new_run=True
    )
    assert shards_of(plan) == [["g000", "g001", "g002"]]
    assert not (tmp_path / "shards").exists() and not (tmp_path / "manifest").exists()
    assert json.loads((tmp_path / "run.json").read_text())["labels_config"]["thresholds"]["box_score"] == 0.9


def test_a_source_whose_planned_frames_are_gone_is_refused(tmp_path):
    prepare_run_dir(tmp_path, config(), CHECKPOINTS, "src", refs(6))
    with pytest.raises(RunMismatchError, match=r"2 planned frames are no longer in the source \(first: 'f004'\)"):
        prepare_run_dir(tmp_path, config(), CHECKPOINTS, "src", refs(4))
    # frames added to the source are not planned into the existing run
    assert prepare_run_dir(tmp_path, config(), CHECKPOINTS, "src", refs(9)).num_frames == 6


def test_a_run_planned_by_the_older_json_plan_is_refused_with_the_way_out(tmp_path):
    prepare_run_dir(tmp_path, config(), CHECKPOINTS, "src", refs(6))
    (tmp_path / "plan.json").write_text('{"format": "or-pose-labels/plan", "version": 1, "shards": []}')
    with pytest.raises(RunMismatchError, match=r"plan.json: this run was planned by an older version.*--new-run"):
        prepare_run_dir(tmp_path, config(), CHECKPOINTS, "src", refs(6))
    assert prepare_run_dir(tmp_path, config(), CHECKPOINTS, "src", refs(6), new_run=True).num_frames == 6
