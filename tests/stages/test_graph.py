"""The stage graph: its contract check catches a broken graph at build time, naming the stage and
the column; fusing the model stages keeps the contract; each stage's contract is the one its class declares."""

import numpy as np
import pytest

from orpose.stages.base import Stage
from orpose.stages.graph import (
    FUSED_NAME,
    ContractError,
    StageSpec,
    build_graph,
    default_graph,
    fuse_models,
)


def test_the_default_graph_hands_the_driver_frame_shard_record_and_every_timing():
    graph = default_graph()
    assert graph.names == ("decode", "detect", "keypoints", "lift", "assemble")
    out = graph.output_columns()
    for column in ("frame_id", "shard_index", "record", "reject_reason", *(f"seconds_{s}" for s in graph.names)):
        assert column in out
    for dropped in ("color", "depth_encoded", "boxes", "pose_hard", "hard_mask"):  # large columns end where used
        assert dropped not in out


def test_a_stage_reading_a_column_nobody_writes_fails_at_build_time_naming_both():
    stages = default_graph().stages
    with pytest.raises(ContractError, match="stage 'detect' reads column 'color', which no stage before it writes"):
        build_graph(stages[1:])  # no decode
    with pytest.raises(ContractError, match="stage 'lift' reads column 'keypoints'"):
        build_graph([stages[0], stages[1], stages[3], stages[2], stages[4]])  # lift before keypoints


def test_a_column_dropped_upstream_cannot_be_read_downstream():
    stages = list(default_graph().stages)
    late_reader = StageSpec("late", object, "cpu", reads=("color",), writes=("x",))
    with pytest.raises(ContractError, match="stage 'late' reads column 'color'"):  # keypoints dropped it
        build_graph([*stages[:3], late_reader, *stages[3:]])
    build_graph([*stages[:2], late_reader, *stages[2:]])  # before keypoints it is still there


def test_duplicate_stage_names_are_refused():
    decode = default_graph().stages[0]
    with pytest.raises(ContractError, match="unique"):
        build_graph([decode, decode])


def test_fusing_the_model_stages_keeps_the_columns_and_the_per_stage_timings():
    plain, fused = default_graph(), default_graph(fused=True)
    assert fused.names == ("decode", FUSED_NAME, "assemble")
    models = fused.stages[1]
    assert [p.name for p in models.parts] == ["detect", "keypoints", "lift"]
    assert models.reads == ("color", "reject_reason")  # boxes and keypoints are made inside
    assert models.drops == ("color",)
    assert set(fused.output_columns()) == set(plain.output_columns())
    assert fused.timed_stages == plain.timed_stages
    assert fuse_models(fused) == fused  # idempotent: nothing left to fuse


def test_the_whole_graph_in_one_stage_reads_the_source_and_writes_what_the_stages_did():
    plain, whole = default_graph(), default_graph(fused="whole")
    assert whole.names == (FUSED_NAME,) and whole.stages[0].kind == "model"
    assert [p.name for p in whole.stages[0].parts] == ["decode", "detect", "keypoints", "lift", "assemble"]
    assert set(whole.stages[0].reads) <= set(plain.source_columns)
    assert set(whole.output_columns()) == set(plain.output_columns())
    assert whole.timed_stages == plain.timed_stages
    assert fuse_models(default_graph(fused=True), whole=True) == whole  # a fused stage's parts are taken apart


def test_each_stage_of_the_graph_is_its_class_declaration_and_times_itself_under_its_name():
    for spec in default_graph().stages:
        assert issubclass(spec.cls, Stage) and spec == spec.cls.spec()
        assert spec.timings == (f"seconds_{spec.cls.name}",)


def test_a_stage_writing_less_than_it_declares_is_caught_after_its_call():
    from orpose.stages.isolation import run_stage

    class Forgetful(Stage):
        name, kind, reads, writes = "forgetful", "cpu", ("frame_id",), ("boxes",)

        def __call__(self, batch):
            with self.timer() as timer:
                pass
            return timer.stamp(dict(batch))

    with pytest.raises(RuntimeError, match="stage 'forgetful' did not write the column.*boxes"):
        run_stage(Forgetful.spec(), Forgetful(), {"frame_id": np.array(["a"], dtype=object)})
