"""`labels run`: the labelling job's driver.

    plan (`label_store.plan`, streamed) -> pending frames -> the stage graph (`stages.graph`: decode ->
    detect -> keypoints -> lift -> assemble), run by an executor (`pipeline.executors`: Ray by
    default, or in-process) -> the driver commits each shard as soon as all its frames have arrived.

The driver holds the records of the shards in flight only. When the executor loses work (a Ray
node, worker or actor dies), the attempt ends and the next one labels the uncommitted shards.

Everything that can be wrong with the inputs is checked before any executor starts: the config
(typed), the weights (present), the source (listable), the run directory (same teacher setup).
Ray runs locally by default, or joins the cluster at `address` / RAY_ADDRESS.
"""

from __future__ import annotations

import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from orpose.configs.schema import TeacherConfig
from orpose.errors import OrPoseError
from orpose.frames.files import sha256_file
from orpose.frames.sources import FrameSource
from orpose.label_store.index import consolidate_index
from orpose.label_store.plan import Plan, pending_frames
from orpose.label_store.provenance import make_provenance
from orpose.label_store.shard import commit_shard
from orpose.pipeline.executors import LABELLED_AT, make_executor, worker_column
from orpose.pipeline.resources import stage_resources
from orpose.pipeline.run_dir import prepare_run_dir
from orpose.pipeline.run_lock import acquire_run_lock
from orpose.stages.context import StageContext
from orpose.stages.graph import StageGraph, default_graph
from orpose.stages.rows import timing_column
from orpose.teachers.install_check import check_kernels_available
from orpose.teachers.weights import WeightsMissingError, checkpoint_path, missing_checkpoints, missing_message

__all__ = ["RunSummary", "RunError", "run_labels", "run_graph", "TIMED_STAGES"]

# The stages the summary times, in order (a fused model stage times its parts one by one).
TIMED_STAGES = default_graph().timed_stages


class RunError(OrPoseError, RuntimeError):
    """The run stopped: too many rejected frames, or frames that never came back."""


@dataclass
class RunSummary:
    run_dir: str
    planned_frames: int = 0
    shards_total: int = 0
    shards_done_before: int = 0
    shards_committed: int = 0  # by this invocation
    frames_labelled: int = 0  # by this invocation
    frames_rejected: Counter = field(default_factory=Counter)  # reason -> count, this invocation
    persons: int = 0
    hard_persons: int = 0
    hard_keypoints: int = 0
    soft_keypoints: int = 0
    stage_seconds: dict = field(default_factory=lambda: {s: 0.0 for s in TIMED_STAGES})
    wall_seconds: float = 0.0
    steady_frames: int = 0  # frames that arrived after the first batch ...
    steady_seconds: float = 0.0  # ... and the time they took: throughput without start-up
    model_work: bool = False
    executor: str = "ray"
    gpu_peak_mb: float | None = None  # torch's peak CUDA allocation in this process (local executor on a GPU)
    pending_frames: int = 0  # planned frames not in a committed shard when this invocation started
    plan_only: bool = False  # `labels run --plan-only`: planned and counted, no model loaded
    lost_work: list = field(default_factory=list)  # per attempt that lost a node, actor or object: what happened
    engine_logs: str | None = None  # where the executor's own logs are (Ray's session log folder)
    # model stage -> worker ("node:pid:actor" on Ray, "host:pid:thread" in-process) -> frames it labelled
    frames_per_worker: dict = field(default_factory=dict)
    first_commit_seconds: float | None = None  # when this invocation committed its first shard, after its start
    last_labelled_seconds: float | None = None  # when the last batch left the last model stage, after the start
    # per model stage (a worker pool): busy seconds of the frames that arrived after the first batch
    steady_model_seconds: dict = field(default_factory=dict)

    def steady_state(self) -> tuple[float | None, str]:
        """(frames/s after the first batch, '') or (None, why there is none). Too few frames say nothing; and
        frames that reached the driver faster than the model workers could have labelled them (their busy
        seconds over the number of workers of each pool) came in a burst: that is not a throughput."""
        if self.steady_frames < 32 or self.steady_seconds <= 0:
            return None, f"too few frames after the first batch ({self.steady_frames} < 32)"
        fastest = max(
            (
                busy / max(1, len(self.frames_per_worker.get(stage, {})))
                for stage, busy in self.steady_model_seconds.items()
            ),
            default=0.0,
        )
        if self.steady_seconds < 0.5 * fastest:
            return None, (
                f"a burst: {self.steady_frames} frames arrived in {self.steady_seconds:.2f} s, but their model work "
                f"needs at least {fastest:.1f} s on these workers (the executor held its output back)"
            )
        return self.steady_frames / self.steady_seconds, ""

    def steady_fps(self) -> float | None:
        """Frames/s after the first batch, or None where `steady_state` says there is none."""
        return self.steady_state()[0]

    def to_json(self) -> str:
        """The summary as one JSON object (`labels run --summary-json`; read by `labels bench`)."""
        import dataclasses
        import json

        fps, why = self.steady_state()
        return json.dumps(
            {
                **dataclasses.asdict(self),
                "frames_rejected": dict(self.frames_rejected),
                "steady_fps": fps,
                "steady_note": why,
            }
        )

    def worker_lines(self) -> list[str]:
        """Frames per model worker, per pool: how the work was spread."""
        out = []
        for stage, workers in sorted(self.frames_per_worker.items()):
            counts = sorted(workers.values(), reverse=True)
            nodes = Counter()
            for worker, n in workers.items():
                nodes[worker.split(":")[0]] += n
            out.append(
                f"model workers ({stage}): {len(counts)} labelled {' / '.join(map(str, counts))} frames"
                + (f"; per node: {', '.join(f'{k} {v}' for k, v in nodes.most_common())}" if len(nodes) > 1 else "")
            )
        return out

    def lines(self) -> list[str]:
        frames = self.frames_labelled + sum(self.frames_rejected.values())
        out = [
            f"run: {self.run_dir}",
            f"plan: {self.planned_frames} frames in {self.shards_total} shards; "
            f"{self.shards_done_before} were already committed, {self.shards_committed} committed now",
        ]
        if self.plan_only:
            out.append(
                f"pending: {self.pending_frames} frames in {self.shards_total - self.shards_done_before} shards "
                "(--plan-only: no model was loaded)"
            )
            return out
        if not self.model_work:
            out.append("nothing to label: every planned shard is committed (no model was loaded)")
            return out
        out.append(
            f"frames: {frames} processed in {self.wall_seconds:.1f} s "
            f"({frames / max(self.wall_seconds, 1e-9):.2f} frames/s), "
            f"{self.frames_labelled} labelled, {sum(self.frames_rejected.values())} rejected"
        )
        fps, why = self.steady_state()
        if fps is not None:
            start = "Ray start, model loading" if self.executor == "ray" else "model loading"
            out.append(
                f"steady state: {fps:.3f} frames/s after the first batch "
                f"({start} and the pipeline's fill took the rest)"
            )
        elif why.startswith("a burst"):
            out.append(f"steady state: none ({why})")
        if self.first_commit_seconds is not None and self.last_labelled_seconds is not None:
            out.append(
                f"commits: first shard committed at {self.first_commit_seconds:.1f} s, "
                f"last batch labelled at {self.last_labelled_seconds:.1f} s"
            )
        out += self.worker_lines()
        if self.gpu_peak_mb is not None:
            out.append(f"GPU memory: {self.gpu_peak_mb:.0f} MB peak allocated by torch in this process")
        for reason, count in sorted(self.frames_rejected.items()):
            out.append(f"  rejected {count} x {reason}")
        out.append(
            f"persons: {self.persons} soft skeletons ({self.soft_keypoints} keypoints), "
            f"{self.hard_persons} hard skeletons ({self.hard_keypoints} hard keypoints)"
        )
        for lost in self.lost_work:
            out.append(f"  retried after lost work: {lost}")
        busy = sum(self.stage_seconds.values()) or 1.0
        out.append(
            f"time per stage (busy seconds, summed over workers; {self.executor} executor): "
            + ", ".join(
                f"{s} {self.stage_seconds[s]:.1f} s ({100 * self.stage_seconds[s] / busy:.0f} %)" for s in TIMED_STAGES
            )
        )
        if self.engine_logs:
            out.append(f"Ray's logs: {self.engine_logs}")
        return out


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
    if config.run.fuse_models is not None:
        return default_graph(fused=config.run.fuse_models)
    separate = default_graph(fused=False)
    on_cpus = not any(stage_resources(spec, config.run).gpus for spec in separate.stages)
    if not on_cpus:
        return separate
    return default_graph(fused="whole" if executor == "ray" else True)


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
) -> RunSummary:
    """Label every planned frame that is not yet in a committed shard; see the module docstring.
    `plan_only`: write (or check) the plan and count what is pending, load no model. `graph`: the stage
    graph to execute (default `run_graph(config)`; tests give stand-in model stages of the same columns)."""
    started = time.perf_counter()
    started_at = time.time()  # wall clock: the model workers stamp their batches with it (LABELLED_AT)
    run_dir = Path(run_dir)
    weights_dir = Path(weights_dir or config.weights_dir)
    missing = missing_checkpoints(config, weights_dir)
    if missing:
        raise WeightsMissingError(missing_message(config, missing))
    if not plan_only:
        check_kernels_available(config)  # a kernel this install lacks (mmcv-lite): refused before any work
    with acquire_run_lock(run_dir):  # one driver per run directory, from planning to the last commit
        checkpoints = _checkpoint_digests(config, weights_dir)  # sha256 of every checkpoint: hash them once
        plan = prepare_run_dir(run_dir, config, checkpoints, source_description, source, new_run, progress)
        pending = pending_frames(run_dir, plan)
        summary = RunSummary(
            str(run_dir), plan.num_frames, plan.num_shards, plan.num_shards - len(pending.shards), executor=executor
        )
        summary.pending_frames = pending.num_frames
        if plan_only or not len(pending.shards):
            summary.plan_only = plan_only
            if not plan_only:
                consolidate_index(run_dir)  # a run finished by a version without the index gets one
            summary.wall_seconds = time.perf_counter() - started
            return summary

        provenance = make_provenance(config, checkpoints)
        graph = graph or run_graph(config, executor)
        context = StageContext(config, weights_dir, dict(source.calibrations()))
        summary.model_work = True
        with make_executor(executor, graph, context, config.run.batch_size, address, verbose) as engine:
            summary.engine_logs = engine.log_location()
            for attempt in range(1, attempts + 1):
                if not len(pending.shards):
                    break
                try:
                    _commit_batches(
                        engine.batches(pending),
                        pending.num_frames,
                        plan,
                        provenance,
                        run_dir,
                        summary,
                        config.run.max_rejected_fraction,
                        progress,
                        model_timings(graph),
                        started_at,
                    )
                except Exception as error:
                    if not engine.lost_work(error):  # a node, a worker, an actor or its objects were lost
                        raise
                    summary.lost_work.append(f"attempt {attempt}: {_first_line(error)}")
                    print(
                        f"labels run: attempt {attempt} of {attempts} lost work ({_first_line(error)}); "
                        "its uncommitted shards are labelled again",
                        file=sys.stderr,
                    )
                pending = pending_frames(run_dir, plan)
            leftover = pending.shards
            if len(leftover):
                raise RunError(
                    f"{len(leftover)} shards could not be completed after {attempts} attempts "
                    f"(first: {leftover[0]}); run the same command again to finish them"
                )
        consolidate_index(run_dir)  # one file for readers to open (label_store/index.py)
        summary.wall_seconds = time.perf_counter() - started
        summary.gpu_peak_mb = gpu_peak_mb()
        return summary


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


def _commit_batches(
    batches,
    total: int,
    plan: Plan,
    provenance: dict,
    run_dir: Path,
    summary: RunSummary,
    max_rejected_fraction: float,
    progress: bool,
    models: dict[str, tuple[str, ...]],
    started_at: float,
) -> None:
    """Gather the executor's output batches per shard; commit each shard when its last frame arrives.
    The driver holds only the records of shards in flight; a frame that arrives twice (an executor's
    retry) counts once, and frames of a shard already committed are ignored."""
    from tqdm import tqdm

    waiting: dict[int, dict[str, tuple[int, object]]] = defaultdict(dict)  # shard -> frame id -> (position, record)
    committed: set[int] = set()
    processed = rejected = 0
    first_detail: dict[str, str] = {}  # reject reason -> the first frame's message
    bar = tqdm(total=total, desc="labelling", unit="frame", disable=not progress, smoothing=0.1)
    first_batch_at = None
    try:
        for batch in batches:
            steady = first_batch_at is not None
            if first_batch_at is None:
                first_batch_at = time.perf_counter()
            else:
                summary.steady_frames += len(batch["frame_id"])
                summary.steady_seconds = time.perf_counter() - first_batch_at
            if LABELLED_AT in batch and len(batch[LABELLED_AT]):
                labelled = float(np.max(batch[LABELLED_AT])) - started_at
                summary.last_labelled_seconds = max(summary.last_labelled_seconds or 0.0, labelled)
            for i in range(len(batch["frame_id"])):
                shard, frame_id, record = int(batch["shard_index"][i]), str(batch["frame_id"][i]), batch["record"][i]
                if shard in committed or frame_id in waiting[shard]:
                    continue
                waiting[shard][frame_id] = (int(batch["position"][i]), record)
                for stage in TIMED_STAGES:
                    summary.stage_seconds[stage] += float(batch[timing_column(stage)][i])
                for pool, parts in models.items():
                    if worker_column(pool) in batch:
                        workers = summary.frames_per_worker.setdefault(pool, {})
                        worker = str(batch[worker_column(pool)][i])
                        workers[worker] = workers.get(worker, 0) + 1
                    if steady:
                        busy = sum(float(batch[timing_column(part)][i]) for part in parts)
                        summary.steady_model_seconds[pool] = summary.steady_model_seconds.get(pool, 0.0) + busy
                processed += 1
                if record.frame["reject_reason"]:
                    rejected += 1
                    summary.frames_rejected[record.frame["reject_reason"]] += 1
                    first_detail.setdefault(record.frame["reject_reason"], record.frame["reject_detail"])
                else:
                    summary.frames_labelled += 1
                    persons = record.persons
                    if record.num_persons:
                        summary.persons += record.num_persons
                        summary.soft_keypoints += 17 * record.num_persons
                        summary.hard_persons += int(np.sum(persons["hard_valid"]))
                        summary.hard_keypoints += int(np.sum(persons["hard_mask"]))
                if len(waiting[shard]) == plan.shard_frames(shard):
                    records = [record for _, record in sorted(waiting.pop(shard).values(), key=lambda pr: pr[0])]
                    commit_shard(run_dir, shard, records, provenance)
                    if summary.first_commit_seconds is None:
                        summary.first_commit_seconds = time.time() - started_at
                    committed.add(shard)
                    summary.shards_committed += 1
            bar.update(len(batch["frame_id"]))
            busy = sum(summary.stage_seconds.values()) or 1.0
            bar.set_postfix_str(
                " ".join(f"{s[:4]}={100 * summary.stage_seconds[s] / busy:.0f}%" for s in TIMED_STAGES)
                + f" rejected={rejected}"
            )
            if processed >= min(50, total) and rejected / processed > max_rejected_fraction:
                raise RunError(
                    f"{rejected} of {processed} frames were rejected ({100 * rejected / processed:.0f} % > "
                    f"run.max_rejected_fraction = {100 * max_rejected_fraction:.0f} %): "
                    + ", ".join(f"{n} x {r}" for r, n in summary.frames_rejected.most_common())
                    + (
                        f". The first stage error: {first_detail['stage_error']}"  # a bug: the stage and exception
                        if "stage_error" in first_detail
                        else ""
                    )
                    + f". The committed shards in {run_dir} list each rejected frame with its reason."
                )
    finally:
        bar.close()
