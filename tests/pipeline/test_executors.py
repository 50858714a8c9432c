"""The two executors of one stage graph give the same shards (labels equal; only timestamps and
timings may differ): the bundled sample through the in-process executor (the `sample_run` fixture, model
stages fused) and through Ray (`labels run`, model stages in pools of their own); Ray places the model
actors of a GPU run on GPUs of their own (or shared fractions), and each model follows its actor's."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from orpose.label_store.compare import Tolerances, compare
from orpose.label_store.inspection import verify_run
from orpose.label_store.shard import manifest_entries

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


@pytest.mark.slow
def test_local_and_ray_executors_write_the_same_labels(tmp_path, label_bundled_sample, sample_run):
    """`sample_run` is the in-process executor's run of the bundled sample (its default graph on a CPU: the model
    stages fused in one worker); here Ray labels it with the three model stages in pools of their own."""
    out = tmp_path / "ray"
    result = label_bundled_sample(out, "--executor", "ray", "run.fuse_models=false")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "frames: 8 processed" in result.stdout
    assert verify_run(out) == []
    comparison = compare(sample_run, out, SAME)
    assert comparison.ok, comparison.problems[:5]
    assert comparison.matched > 0 and comparison.added == comparison.removed == 0
    assert [e.frame_ids for e in manifest_entries(out)] == [e.frame_ids for e in manifest_entries(sample_run)]


@pytest.mark.slow
def test_with_fusion_ray_commits_shards_of_whole_instants(tmp_path, label_bundled_sample):
    """Multi-view fusion on Ray: the plan orders the sample (listed camera by camera) instant by instant, each
    shard holds whole instants (2 cameras: one instant of 2 frames in a shard of at most 3), every frame carries
    its instant into the shard, and the driver's fuse stage ran (its time in the summary)."""
    from orpose.label_store.reader import LabelRun

    out = tmp_path / "fused"
    result = label_bundled_sample(out, "--executor", "ray", "fusion.enabled=true", "run.shard_size=3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "frames: 8 processed" in result.stdout and "fuse " in result.stdout
    assert verify_run(out) == []
    run = LabelRun(out)
    for entry in manifest_entries(out):
        frames = [run.get(frame_id).frame for frame_id in entry.frame_ids]
        assert len({int(f["instant"]) for f in frames}) == 1 and int(frames[0]["instant"]) >= 0
        assert sorted(f["camera_id"] for f in frames) == ["day1/cam1", "day1/cam2"]
    assert len(manifest_entries(out)) == 4


def placement_probe(stage: str, log: Path):
    """Stands in for a model stage in a Ray actor: at construction it writes where its model would
    go (Ray's GPU ids for the actor, CUDA_VISIBLE_DEVICES, teachers.mm.cuda_device) to `log`."""

    class PlacementProbe:
        def __init__(self):
            import ray

            from orpose.teachers.mm import cuda_device

            record = dict(
                stage=stage,
                pid=os.getpid(),
                gpu_ids=[str(gpu) for gpu in ray.get_gpu_ids()],
                visible=os.environ.get("CUDA_VISIBLE_DEVICES"),
                device=str(cuda_device()),
            )
            with open(log, "a") as out:
                out.write(json.dumps(record) + "\n")

        @classmethod
        def from_config(cls, context):
            return cls()

        def __call__(self, batch):
            batch[f"seen_{stage}"] = np.ones(len(batch["frame_id"]), bool)
            batch[f"seconds_{stage}"] = np.zeros(len(batch["frame_id"]))  # every stage reports its time
            return batch

    return PlacementProbe


def test_model_actors_asking_for_gpus_get_their_own_and_place_their_models_there(tmp_path):
    """Three logical GPUs on this CPU machine (Ray lets a node declare them): two detector actors
    with a whole GPU each, the keypoint and lifter actors with half a GPU each. Each detector gets
    its own id; keypoints and lifter share the third; every actor's CUDA_VISIBLE_DEVICES is its id,
    so its model goes to cuda:0 of that process: the GPU Ray gave it."""
    import ray

    from orpose.configs.schema import load_teacher_config
    from orpose.pipeline.executors import RayExecutor
    from orpose.stages.context import StageContext
    from orpose.stages.graph import StageSpec, build_graph
    from tests.plans import pending_from_ids

    log = tmp_path / "placements.jsonl"
    names = ("detect", "keypoints", "lift")
    graph = build_graph(
        [StageSpec(n, placement_probe(n, log), "model", reads=("frame_id",), writes=(f"seen_{n}",)) for n in names],
        source_columns=("frame_id",),
    )
    config = load_teacher_config(
        "tiny",
        {"run.detector_actors": 2, "run.detector_gpus": 1, "run.keypoint_gpus": 0.5, "run.lifter_gpus": 0.5},
    )
    ray.init(address="local", num_cpus=4, num_gpus=3, include_dashboard=False, log_to_driver=False)
    try:
        with RayExecutor(graph, StageContext(config, tmp_path), batch_size=2) as executor:
            batches = list(executor.batches(pending_from_ids(tmp_path / "planned", [f"f{i}" for i in range(12)])))
    finally:
        ray.shutdown()
    assert sum(len(b["frame_id"]) for b in batches) == 12 and all(b[f"seen_{n}"].all() for b in batches for n in names)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    by_stage = {n: [r for r in records if r["stage"] == n] for n in names}
    assert [len(by_stage[n]) for n in names] == [2, 1, 1], records  # one record per actor
    for record in records:
        assert len(record["gpu_ids"]) == 1 and record["visible"] == record["gpu_ids"][0], record
        assert record["device"] == "cuda:0", record
    detector_ids = {r["gpu_ids"][0] for r in by_stage["detect"]}
    shared = by_stage["keypoints"][0]["gpu_ids"][0]
    assert len(detector_ids) == 2 and shared not in detector_ids  # a whole GPU each
    assert by_stage["lift"][0]["gpu_ids"][0] == shared  # half of one GPU each: the same one
    assert by_stage["lift"][0]["pid"] != by_stage["keypoints"][0]["pid"]
    assert sorted({*detector_ids, shared}) == ["0", "1", "2"]


def test_lost_work_is_a_ray_failure_under_the_work_not_a_stage_error():
    import ray.exceptions as rx

    from orpose.pipeline.executors import _is_lost_work

    assert _is_lost_work(rx.ActorDiedError())
    assert _is_lost_work(rx.NodeDiedError("node 2 died"))
    assert _is_lost_work(rx.ObjectLostError("ab" * 14, "", ""))
    wrapped = rx.RayTaskError("MapBatches(FusedModelStage)", "traceback", rx.ActorDiedError()).as_instanceof_cause()
    assert _is_lost_work(wrapped)
    try:  # Ray Data raises its own error from the task's
        raise RuntimeError("dataset failed") from rx.ObjectLostError("cd" * 14, "", "")
    except RuntimeError as error:
        assert _is_lost_work(error)
    bug = rx.RayTaskError("MapBatches(KeypointStage)", "traceback", ZeroDivisionError("a bug")).as_instanceof_cause()
    assert not _is_lost_work(bug) and not _is_lost_work(ValueError("bad config")) and not _is_lost_work(None)
    try:  # Ray Data's wrapping of a stage's own exception (seen as 'RayTaskError(UserCodeException)')
        raise rx.UserCodeException("ray::MapWorker(MapBatches(DecodeStage))") from ZeroDivisionError("a bug")
    except rx.UserCodeException as error:
        wrapped_bug = rx.RayTaskError("MapBatches(DecodeStage)", "traceback", error).as_instanceof_cause()
        assert not _is_lost_work(error) and not _is_lost_work(wrapped_bug)


@pytest.mark.slow
def test_lost_work_is_told_from_a_stage_error_on_real_ray_errors():
    """The errors Ray itself raises, not constructed ones: an exception raised inside a task and inside an
    actor's method is the code's own (not lost work: running it again fails the same way); an actor killed
    under its call is lost work."""
    import ray

    from orpose.pipeline.executors import _is_lost_work

    @ray.remote(max_retries=0)
    def task_that_raises():
        raise ZeroDivisionError("a bug in a task")

    @ray.remote(max_restarts=0)
    class Worker:
        def fail(self):
            raise ValueError("a bug in an actor")

        def wait(self):
            import time

            time.sleep(60)

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        errors = {}
        for name, ref in (("task", task_that_raises.remote()), ("actor", Worker.remote().fail.remote())):
            with pytest.raises(Exception) as caught:
                ray.get(ref, timeout=60)
            errors[name] = caught.value
        worker = Worker.remote()
        call = worker.wait.remote()
        ray.kill(worker)
        with pytest.raises(Exception) as caught:
            ray.get(call, timeout=60)
        errors["killed actor"] = caught.value
    finally:
        ray.shutdown()
    assert isinstance(errors["task"], ZeroDivisionError) and not _is_lost_work(errors["task"])
    assert isinstance(errors["actor"], ValueError) and not _is_lost_work(errors["actor"])
    assert isinstance(errors["killed actor"], ray.exceptions.RayActorError) and _is_lost_work(errors["killed actor"])


def test_the_in_process_executor_gives_the_caller_its_torch_threads_back(tmp_path, tiny_weights):
    """The tiny config's model stages take one intra-op thread each (run.detector_actors=2, torch_threads=1); a
    caller that labels and then trains in the same process (`labels probe`) must get its own threads back."""
    import torch

    from orpose.configs.schema import load_teacher_config
    from orpose.frames.sources import open_source
    from orpose.pipeline.run import run_labels

    config = load_teacher_config("tiny", {"device": "cpu"})
    assert config.run.detector_actors > 1 and config.run.torch_threads == 1
    frames = Path(__file__).parents[2] / "data/sample/manifest.jsonl"
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # not what any stage sets
    try:
        run_labels(config, open_source(frames), str(frames), tmp_path / "run", weights_dir=tiny_weights,
                   progress=False, executor="local")  # fmt: skip
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
