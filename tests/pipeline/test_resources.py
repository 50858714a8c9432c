"""What each stage's workers reserve on Ray: the run settings decide, per stage; a fused stage takes its first
model part's pool; the printed graph names every stage with its resources."""

from orpose.configs.schema import RunSpec
from orpose.pipeline.resources import describe_graph, stage_resources
from orpose.stages.graph import default_graph
from orpose.stages.rows import SOURCE_COLUMNS


def test_resources_follow_the_run_settings():
    run = RunSpec(detector_actors=3, keypoint_actors=2, gpus_per_actor=0.5, cpus_per_actor=2.0, cpu_tasks=4)
    by_name = {spec.name: stage_resources(spec, run) for spec in default_graph().stages}
    assert (by_name["detect"].actors, by_name["detect"].cpus, by_name["detect"].gpus) == (3, 2.0, 0.5)
    assert by_name["keypoints"].actors == 2 and by_name["decode"].gpus == 0.0 and by_name["assemble"].actors == 4


def test_a_fused_stage_reserves_its_first_model_parts_pool():
    run = RunSpec(detector_actors=3, keypoint_actors=1, detector_gpus=1.0, keypoint_gpus=0.25)
    for fused in (True, "whole"):
        (models,) = [spec for spec in default_graph(fused=fused).stages if spec.parts]
        assert stage_resources(models, run) == stage_resources(default_graph().stages[1], run)  # detect's
        assert stage_resources(models, run).actors == 3 and stage_resources(models, run).gpus == 1.0


def test_the_printed_graph_lists_stages_resources_and_columns():
    lines = describe_graph(default_graph(), RunSpec(gpus_per_actor=1.0))
    text = "\n".join(lines)
    assert lines[0] == "source columns: " + ", ".join(SOURCE_COLUMNS)
    for name in ("decode", "detect", "keypoints", "lift", "assemble"):
        assert f". {name} (" in text
    assert "x 0.5 CPU + 1 GPU" in text and "drops  : color" in text and lines[-1].startswith("to the driver: ")
