"""The stage graph: its contract check catches a broken graph at build time, naming the stage and
the column; fusing the model stages keeps the contract; the printed graph names every stage."""

import pytest

from orpose.configs.schema import RunSpec
from orpose.stages.graph import (
    FUSED_NAME,
    ContractError,
    StageSpec,
    build_graph,
    default_graph,
    describe_graph,
    fuse_models,
    stage_resources,
)
from orpose.stages.rows import SOURCE_COLUMNS


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


def test_resources_follow_the_run_settings():
    run = RunSpec(detector_actors=3, keypoint_actors=2, gpus_per_actor=0.5, cpus_per_actor=2.0, cpu_tasks=4)
    by_name = {spec.name: stage_resources(spec, run) for spec in default_graph().stages}
    assert (by_name["detect"].actors, by_name["detect"].cpus, by_name["detect"].gpus) == (3, 2.0, 0.5)
    assert by_name["keypoints"].actors == 2 and by_name["decode"].gpus == 0.0 and by_name["assemble"].actors == 4


def test_the_printed_graph_lists_stages_resources_and_columns():
    lines = describe_graph(default_graph(), RunSpec(gpus_per_actor=1.0))
    text = "\n".join(lines)
    assert lines[0] == "source columns: " + ", ".join(SOURCE_COLUMNS)
    for name in ("decode", "detect", "keypoints", "lift", "assemble"):
        assert f". {name} (" in text
    assert "x 0.5 CPU + 1 GPU" in text and "drops  : color" in text and lines[-1].startswith("to the driver: ")
