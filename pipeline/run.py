"""`labels run`: the labelling job's driver.

    plan (`label_store.plan`, streamed) -> pending frames -> the stage graph (`stages.graph`: decode ->
    detect -> keypoints -> lift -> assemble), run by an executor (`pipeline.executors`: Ray by
    default, or in-process) -> the driver commits each shard as soon as all its frames have arrived.

A `LabelJob` checks the inputs, plans, and runs attempts: each hands the executor's batches to a shard
committer and its hooks (`pipeline.commit`: the summary's figures, the progress bar, the guard on
rejected frames); the driver holds the records of the shards in flight only. When the executor loses
work (a Ray node, worker or actor dies), the attempt ends and the next one labels the uncommitted
shards. The summary is `pipeline.summary.RunSummary`.

Everything that can be wrong with the inputs is checked before any executor starts: the config
(typed), the weights (present), the source (listable), the run directory (same teacher setup).
Ray runs locally by default, or joins the cluster at `address` / RAY_ADDRESS.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from orpose.configs.schema import TeacherConfig
from orpose.frames.files import sha256_file
from orpose.frames.sources import FrameSource
from orpose.label_store.index import consolidate_index
from orpose.label_store.plan import PendingFrames, Plan, pending_frames
from orpose.label_store.provenance import make_provenance
from orpose.label_store.shard import check_commits, uncommit_rejected
from orpose.pipeline.commit import ProgressHook, RejectGuard, ShardCommitter, SummaryHook, commit_batches
from orpose.pipeline.executors import Executor, make_executor
from orpose.pipeline.resources import stage_resources
from orpose.pipeline.run_dir import prepare_run_dir
from orpose.pipeline.run_lock import acquire_run_lock
from orpose.pipeline.summary import TIMED_STAGES, RunError, RunSummary
from orpose.stages.context import StageContext
from orpose.stages.fuse import view_cameras
from orpose.stages.graph import StageGraph, default_graph
from orpose.teachers.install_check import check_kernels_available
from orpose.teachers.weights import WeightsMissingError, checkpoint_path, missing_checkpoints, missing_message

__all__ = ["RunSummary", "RunError", "LabelJob", "run_labels", "run_graph", "TIMED_STAGES"]


def _checkpoint_digests(config: TeacherConfig, weights_dir: Path) -> dict[str, str]:
    return {
        spec.checkpoint: sha256_file(checkpoint_path(weights_dir, spec.checkpoint))
        for spec in (config.detector, config.keypoints, config.lifter)
    }


def run_graph(config: TeacherConfig, executor: str = "ray") -> StageGraph:
    """The stage graph a run of `config` executes (`run.fuse_models`):

    - true: the model stages fused into one actor per device (decode and assemble in actor pools of their own);
    - false: one actor pool per stage;
    - unset (the default): on GPUs, separate pools; on CPUs, fused, and under Ray the whole graph in each model
      actor (decode and assemble too: on a CPU machine their two extra worker processes cost more start-up than
      their overlap gains; measured in docs/benchmarks.md). The local executor keeps decode apart: it runs it
      on threads a few batches ahead of the models.
    """
    fusion = config.fusion.enabled  # multi-view fusion: a shard stage in the driver (stages.fuse)
    if config.run.fuse_models is not None:
        return default_graph(fused=config.run.fuse_models, fusion=fusion)
    separate = default_graph(fused=False, fusion=fusion)
    on_cpus = not any(stage_resources(spec, config.run).gpus for spec in separate.stages)
    if not on_cpus:
        return separate
    return default_graph(fused="whole" if executor == "ray" else True, fusion=fusion)


@dataclass
class LabelJob:
    """One invocation of `labels run`: check the inputs, plan, label what is pending, commit shard by shard.

    `engine`: an executor to use instead of the one `executor` names (`pipeline.executors.make_executor`):
    tests and embedding programs hand one in. `graph`: the stage graph to execute (default `run_graph`)."""

    config: TeacherConfig
    source: FrameSource
    source_description: str
    run_dir: Path
    weights_dir: Path
    executor: str = "ray"
    address: str | None = None
    new_run: bool = False
    progress: bool = True
    attempts: int = 3
    verbose: bool = False
    graph: StageGraph | None = None
    engine: Executor | None = None
    retry_rejected: tuple[str, ...] = ()

    def check(self, plan_only: bool = False) -> None:
        """Refuse, before any work: missing checkpoints (each named with where it comes from), and a kernel
        this install lacks (mmcv-lite)."""
        missing = missing_checkpoints(self.config, self.weights_dir)
        if missing:
            raise WeightsMissingError(missing_message(self.config, missing))
        if not plan_only:
            check_kernels_available(self.config)
        if self.config.fusion.enabled:  # every camera's pose, named where one lacks it
            view_cameras(self.source.calibrations(), f"the calibration of {self.source_description}")

    def run(self, plan_only: bool = False) -> RunSummary:
        started = time.perf_counter()
        started_at = time.time()  # wall clock: the model workers stamp their batches with it (LABELLED_AT)
        self.check(plan_only)
        with acquire_run_lock(self.run_dir):  # one driver per run directory, from planning to the last commit
            checkpoints = _checkpoint_digests(self.config, self.weights_dir)  # hash every checkpoint once
            plan = prepare_run_dir(
                self.run_dir,
                self.config,
                checkpoints,
                self.source_description,
                self.source,
                self.new_run,
                self.progress,
            )
            for problem in check_commits(self.run_dir):  # torn or lost shards: labelled again, never trusted
                print(f"labels run: {problem}; its shard is labelled again", file=sys.stderr)
            if self.retry_rejected:
                shards, frames = uncommit_rejected(self.run_dir, self.retry_rejected)
                print(
                    f"labels run: --retry-rejected {' '.join(self.retry_rejected)}: {frames} rejected frames in "
                    f"{shards} shards; those shards are labelled again",
                    file=sys.stderr,
                )
            pending = pending_frames(self.run_dir, plan)
            summary = RunSummary(
                str(self.run_dir), plan.num_frames, plan.num_shards, plan.num_shards - len(pending.shards),
                executor=self.executor, pending_frames=pending.num_frames, plan_only=plan_only,
            )  # fmt: skip
            if plan_only:
                summary.wall_seconds = time.perf_counter() - started
                return summary
            if len(pending.shards):
                summary.model_work = True
                self._label(plan, pending, make_provenance(self.config, checkpoints), summary, started_at)
            consolidate_index(self.run_dir)  # one file for readers to open (label_store/index.py)
        summary.wall_seconds = time.perf_counter() - started
        summary.gpu_peak_mb = gpu_peak_mb()
        return summary

    def _context(self) -> StageContext:
        return StageContext(self.config, self.weights_dir, dict(self.source.calibrations()))

    def _make_engine(self, graph: StageGraph) -> Executor:
        if self.engine is not None:
            return self.engine
        context = self._context()
        return make_executor(self.executor, graph, context, self.config.run.batch_size, self.address, self.verbose)

    def _label(
        self, plan: Plan, pending: PendingFrames, provenance: dict, summary: RunSummary, started_at: float
    ) -> None:
        """Attempts until every pending shard is committed: an attempt that loses work (a node, a worker, an actor
        or its objects) is followed by one over the shards still uncommitted; any other error stops the run."""
        graph = self.graph or run_graph(self.config, self.executor)
        with self._make_engine(graph) as engine:
            summary.engine_logs = engine.log_location()
            for attempt in range(1, self.attempts + 1):
                if not len(pending.shards):
                    break
                try:
                    self._attempt(engine, graph, pending, plan, provenance, summary, started_at)
                except Exception as error:
                    if not engine.lost_work(error):
                        raise
                    summary.lost_work.append(f"attempt {attempt}: {_first_line(error)}")
                    print(
                        f"labels run: attempt {attempt} of {self.attempts} lost work ({_first_line(error)}); "
                        "its uncommitted shards are labelled again",
                        file=sys.stderr,
                    )
                pending = pending_frames(self.run_dir, plan)
        if len(pending.shards):
            raise RunError(
                f"{len(pending.shards)} shards could not be completed after {self.attempts} attempts "
                f"(first: {pending.shards[0]}); run the same command again to finish them"
            )

    def _attempt(
        self,
        engine: Executor,
        graph: StageGraph,
        pending: PendingFrames,
        plan: Plan,
        provenance: dict,
        summary: RunSummary,
        started_at: float,
    ) -> None:
        total = pending.num_frames
        hooks = [
            SummaryHook(summary, model_timings(graph), started_at),
            ProgressHook(summary, total, self.progress),
            RejectGuard(self.config.run.max_rejected_fraction, total, self.run_dir),
        ]
        shard_stages = [spec.build(self._context()) for spec in graph.shard_stages]
        committer = ShardCommitter(self.run_dir, plan, provenance, hooks, shard_stages)
        commit_batches(engine.batches(pending), committer, hooks)
        for stage, seconds in committer.shard_stage_seconds.items():
            summary.stage_seconds[stage] = summary.stage_seconds.get(stage, 0.0) + seconds


def run_labels(
    config: TeacherConfig,
    source: FrameSource,
    source_description: str,
    run_dir: str | Path,
    address: str | None = None,
    new_run: bool = False,
    weights_dir: str | Path | None = None,
    progress: bool = True,
    attempts: int = 3,
    executor: str = "ray",
    plan_only: bool = False,
    verbose: bool = False,
    graph: StageGraph | None = None,
    engine: Executor | None = None,
    retry_rejected: tuple[str, ...] = (),
) -> RunSummary:
    """Label every planned frame that is not yet in a committed shard (`LabelJob`; see the module docstring).
    `plan_only`: write (or check) the plan and count what is pending, load no model."""
    job = LabelJob(
        config, source, source_description, Path(run_dir), Path(weights_dir or config.weights_dir),
        executor=executor, address=address, new_run=new_run, progress=progress, attempts=attempts,
        verbose=verbose, graph=graph, engine=engine, retry_rejected=retry_rejected,
    )  # fmt: skip
    return job.run(plan_only)


def model_timings(graph: StageGraph) -> dict[str, tuple[str, ...]]:
    """Model stage (a worker pool) -> the timed stages its workers run (a fused stage: its parts)."""
    return {
        spec.name: tuple(t.removeprefix("seconds_") for t in spec.timings)
        for spec in graph.stages
        if spec.kind == "model"
    }


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def gpu_peak_mb() -> float | None:
    """Peak CUDA memory torch allocated in this process, MB; None where CUDA was not used here."""
    torch = sys.modules.get("torch")  # never imported: no model ran in this process
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return torch.cuda.max_memory_allocated() / 2**20
