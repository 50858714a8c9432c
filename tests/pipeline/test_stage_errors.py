"""A stage's own exception is isolated to the frame that raises it, on both executors: that frame is committed
as rejected (`stage_error`, naming the stage and the exception), its neighbours are labelled; a stage that fails
on every frame stops the run through the rejected-fraction rule, naming the stage and the exception, and never
asks for the same command again."""

import numpy as np
import pytest

from orpose.configs.schema import load_teacher_config
from orpose.frames.sources import ManifestSource
from orpose.label_store.reader import LabelRun
from orpose.label_store.shard import manifest_entries
from orpose.pipeline.run import run_labels
from orpose.stages import isolation
from orpose.stages.graph import StageSpec
from orpose.stages.isolation import BrokenStageError, TransientStageError, run_stage
from orpose.stages.rows import objects
from tests.stand_ins import stand_in_graph

SAMPLE = "data/sample/manifest.jsonl"


@pytest.mark.parametrize("executor, fused", [("local", True), ("ray", True), ("ray", "whole")])
def test_an_exception_on_one_frame_rejects_that_frame_only(tmp_path, tiny_weights, executor, fused):
    config = load_teacher_config("tiny", {"run.batch_size": 4, "run.shard_size": 4, "run.detector_actors": 1})
    # inside the fused model stage, mid-batch; "whole": decode runs in that stage too (the Ray default on CPUs)
    graph = stand_in_graph(fail_on={"keypoints": "cam1/000002"}, fused=fused)
    summary = run_labels(
        config, ManifestSource(SAMPLE), SAMPLE, tmp_path, weights_dir=tiny_weights, progress=False,
        executor=executor, graph=graph,
    )  # fmt: skip
    assert summary.frames_labelled == 7 and dict(summary.frames_rejected) == {"stage_error": 1}
    run = LabelRun(tmp_path)
    bad = run.get("day1/cam1/000002").frame
    assert bad["reject_reason"] == "stage_error"
    # the part of the fused stage that raised is named
    assert "stage 'keypoints' raised ZeroDivisionError: injected into day1/cam1/000002" in bad["reject_detail"]
    for neighbour in ("day1/cam1/000001", "day1/cam1/000003", "day1/cam2/000002"):
        assert run.get(neighbour).labelled, neighbour


def test_a_stage_failing_on_every_frame_stops_the_run_naming_it(tmp_path, tiny_weights):
    """A stage that raises on every frame of a batch is broken: the run stops at the first batch, no frame is
    committed as rejected for it."""
    config = load_teacher_config("tiny", {"run.batch_size": 4, "run.shard_size": 4, "run.detector_actors": 1})
    graph = stand_in_graph(fail_on={"lift": "day1"})  # every frame
    with pytest.raises(BrokenStageError) as caught:
        run_labels(
            config, ManifestSource(SAMPLE), SAMPLE, tmp_path, weights_dir=tiny_weights, progress=False,
            executor="local", graph=graph,
        )  # fmt: skip
    message = str(caught.value)
    assert "stage 'lift' raised on every one of the 4 frames of a batch (ZeroDivisionError: injected" in message
    assert "run the same command again" not in message
    assert manifest_entries(tmp_path) == []


CUDA_OOM = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.2 GiB total capacity)"


def test_a_single_frame_out_of_memory_is_never_stored_as_a_label(tmp_path, tiny_weights, monkeypatch):
    """Out of memory on one frame even alone (after the stage's own back-off): retried, then the run stops and
    nothing of that batch is committed; with memory back, the same command labels every frame exactly once."""
    monkeypatch.setattr(isolation, "RETRY_PAUSE_S", 0.0)
    config = load_teacher_config("tiny", {"run.batch_size": 4, "run.shard_size": 4, "run.detector_actors": 1})
    out_of_memory = stand_in_graph(
        fail_on={"keypoints": "cam1/000002"}, raises={"keypoints": lambda f: RuntimeError(f"{CUDA_OOM} at {f}")}
    )
    with pytest.raises(TransientStageError, match=r"stage 'keypoints' failed 3 times .* RuntimeError: CUDA out of"):
        run_labels(
            config, ManifestSource(SAMPLE), SAMPLE, tmp_path, weights_dir=tiny_weights, progress=False,
            executor="local", graph=out_of_memory,
        )  # fmt: skip
    assert all(not entry.rejected for entry in manifest_entries(tmp_path))  # no transient error became a reject
    assert all("day1/cam1/000002" not in entry.frame_ids for entry in manifest_entries(tmp_path))
    summary = run_labels(
        config, ManifestSource(SAMPLE), SAMPLE, tmp_path, weights_dir=tiny_weights, progress=False,
        executor="local", graph=stand_in_graph(),
    )  # fmt: skip
    assert summary.frames_labelled + summary.shards_done_before * 4 == 8 and not summary.frames_rejected
    assert sorted(LabelRun(tmp_path).frame_ids()) == sorted(r.frame_id for r in ManifestSource(SAMPLE).refs())


def test_an_out_of_memory_that_passes_is_retried_and_labels_every_frame(tmp_path, tiny_weights, monkeypatch):
    monkeypatch.setattr(isolation, "RETRY_PAUSE_S", 0.0)
    config = load_teacher_config("tiny", {"run.batch_size": 4, "run.shard_size": 4, "run.detector_actors": 1})
    failures = iter([RuntimeError(CUDA_OOM)])  # once, then memory is free again
    graph = stand_in_graph(fail_on={"keypoints": "cam1/000002"}, raises={"keypoints": lambda f: next(failures, None)})
    summary = run_labels(
        config, ManifestSource(SAMPLE), SAMPLE, tmp_path, weights_dir=tiny_weights, progress=False,
        executor="local", graph=graph,
    )  # fmt: skip
    assert summary.frames_labelled == 8 and not summary.frames_rejected


def test_bisection_finds_every_failing_row_and_keeps_the_others():
    class Halves:
        calls = 0

        def __call__(self, batch):
            Halves.calls += 1
            if any(f in ("f2", "f5") and not r for f, r in zip(batch["frame_id"], batch["reject_reason"])):
                raise ValueError("bad row")
            n = len(batch["frame_id"])
            return dict(batch, out=np.array([r == "" for r in batch["reject_reason"]]), seconds_halves=np.zeros(n))

    spec = StageSpec("halves", Halves, "model", reads=("frame_id",), writes=("out",))
    batch = {
        "frame_id": np.array([f"f{i}" for i in range(8)], dtype=object),
        "reject_reason": np.array([""] * 7 + ["corrupt_image"], dtype=object),
        "reject_detail": np.array([""] * 8, dtype=object),
    }
    out = run_stage(spec, Halves(), batch)
    assert out["reject_reason"].tolist() == ["", "", "stage_error", "", "", "stage_error", "", "corrupt_image"]
    assert out["out"].tolist() == [True, True, False, True, True, False, True, False]
    assert (
        "frame 'f2'" in out["reject_detail"][2]
        and "stage 'halves' raised ValueError: bad row" in out["reject_detail"][2]
    )
    assert Halves.calls <= 1 + 2 * 2 * 3 + 1  # first call, 2 per level (3 levels) per failing row, final call

    class WholeBatchOnly:
        def __call__(self, batch):
            if len(batch["frame_id"]) == 8:
                raise RuntimeError("fails on the whole batch, on no frame alone")
            return dict(
                batch, out=np.ones(len(batch["frame_id"]), bool), seconds_whole=np.zeros(len(batch["frame_id"]))
            )

    spec = StageSpec("whole", WholeBatchOnly, "model", reads=("frame_id",), writes=("out",))
    with pytest.raises(RuntimeError, match="on no frame alone"):  # not a frame's fault: raised as it is
        run_stage(spec, WholeBatchOnly(), batch)


def test_a_fused_stage_is_isolated_part_by_part_and_raises_when_called_as_it_is():
    (models,) = [spec for spec in stand_in_graph(fail_on={"lift": "f1"}).stages if spec.parts]
    stage = models.build(None)  # the stand-ins need no context
    batch = {
        "frame_id": np.array(["f0", "f1", "f2"], dtype=object),
        "color": objects([np.zeros((2, 2, 3), np.uint8)] * 3),
        "reject_reason": np.array([""] * 3, dtype=object),
        "reject_detail": np.array([""] * 3, dtype=object),
    }
    out = run_stage(models, stage, dict(batch))
    assert out["reject_reason"].tolist() == ["", "stage_error", ""]
    assert "stage 'lift' raised ZeroDivisionError: injected into f1" in out["reject_detail"][1]
    assert all(f"seconds_{part.name}" in out for part in models.parts)
    with pytest.raises(ZeroDivisionError):  # called directly (label_images), a caller's own error is raised to it
        stage(dict(batch))
