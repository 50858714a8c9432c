"""Two executors of one stage graph (`stages.graph`): Ray Data, and in-process.

Both take the pending frames of a run's plan (`label_store.plan.PendingFrames`) and yield the graph's
output batches (position, frame_id, shard_index, record, seconds_<stage>), in any order; the driver
(`pipeline.run`) commits shards from them the same way whichever executor ran.

- `RayExecutor` (`labels run`, the default): one Ray Data `map_batches` per stage, an actor pool
  sized and reserved as `pipeline.resources.stage_resources` says; a local Ray by default, a cluster at
  `address` / RAY_ADDRESS.
- `LocalExecutor` (`labels run --executor local`, tests, notebooks, `labels bench`): every stage
  built once in this process; the CPU stages before the first model stage (decode) run on a small
  thread pool a few batches ahead, overlapped with the model work; no Ray, nothing to start.
  `label_images` runs the model stages on images in memory.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ContextManager, Iterator, Mapping, Protocol

import numpy as np

from orpose.configs.schema import TeacherConfig
from orpose.pipeline.resources import CPU_STAGE_CPUS, stage_resources
from orpose.stages.context import StageContext
from orpose.stages.graph import StageGraph, StageSpec
from orpose.stages.isolation import check_written, run_stage
from orpose.stages.rows import REJECT_DETAIL, REJECT_REASON, objects

if TYPE_CHECKING:
    from orpose.label_store.plan import PendingFrames

__all__ = [
    "Executor",
    "LocalExecutor",
    "RayExecutor",
    "make_executor",
    "EXECUTORS",
    "requested_cpus",
    "worker_column",
    "LABELLED_AT",
    "TestGate",
    "MAX_TASKS_IN_FLIGHT_PER_ACTOR",
]

EXECUTORS = ("ray", "local")
log = logging.getLogger(__name__)
# Batches queued on or running in one Ray actor: 2 overlaps fetching the next batch with labelling this one.
MAX_TASKS_IN_FLIGHT_PER_ACTOR = 2


def worker_column(stage: str) -> str:
    """The column that names the worker (Ray actor or local thread) which ran model stage `stage` on a row."""
    return f"worker_{stage}"


LABELLED_AT = "labelled_at"  # wall-clock time (time.time()) at which the last model stage finished the row's batch


def _stamp_worker(spec: StageSpec, batch: dict, worker: str) -> dict:
    """Name the model worker on every row, and when it finished: the run summary counts frames per worker and
    compares commit times with the last labelled batch (`pipeline.run.RunSummary`)."""
    if spec.kind == "model":
        n = len(batch["frame_id"])
        batch[worker_column(spec.name)] = np.array([worker] * n, dtype=object)
        batch[LABELLED_AT] = np.full(n, time.time())
    return batch


class TestGate:
    """A test-only pause point (never set in production): with LABELS_TEST_GATE=PATH and
    LABELS_TEST_GATE_AFTER=N in the driver's environment, each model worker labels N batches, then waits until
    PATH exists. Fault tests use it to lose a node or an actor while work is certainly left, without racing
    the run (`tests/pipeline/test_cluster.py`, `test_run.py`)."""

    ENV, AFTER_ENV = "LABELS_TEST_GATE", "LABELS_TEST_GATE_AFTER"

    def __init__(self, path: str, after: int):
        self.path, self.after, self.seen, self._lock = path, after, 0, threading.Lock()

    def __getstate__(self) -> dict:  # shipped to Ray actors: each one counts its own batches
        return {"path": self.path, "after": self.after}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], state["after"])

    @classmethod
    def from_env(cls) -> "TestGate | None":
        path = os.environ.get(cls.ENV)
        return cls(path, int(os.environ.get(cls.AFTER_ENV, "1"))) if path else None

    def wait(self) -> None:
        with self._lock:
            self.seen += 1
            seen = self.seen
        if seen > self.after:
            while not os.path.exists(self.path):
                time.sleep(0.1)


class Executor(Protocol):
    """What the driver asks of an executor (LocalExecutor, RayExecutor, or one a test or a program hands to
    `run_labels(engine=...)`): used as a context manager, it labels the pending frames batch by batch."""

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: object) -> None: ...

    def batches(self, frames: PendingFrames) -> Iterator[dict]: ...

    def lost_work(self, error: BaseException) -> bool: ...

    def log_location(self) -> str | None: ...


class LocalExecutor:
    """The graph in this process.

    The CPU stages before the first model stage (decode) run on `decode_threads` threads a few
    batches ahead; the rest of the graph runs on `model_threads` threads, each on its own batch,
    sharing the one copy of each model (torch releases the GIL in its kernels). One model thread
    with torch's intra-op threads on every core suits a GPU or a model that parallelises well;
    on a CPU, where RoIAlign and NMS run on one core, two single-threaded model threads keep both
    cores busy, as two single-threaded detector actors do under Ray.
    """

    def __init__(
        self, graph: StageGraph, context: StageContext, batch_size: int, decode_threads: int = 2, model_threads: int = 1
    ):
        self.graph, self.context, self.batch_size = graph, context, batch_size
        self.decode_threads, self.model_threads = decode_threads, model_threads
        first_model = next((k for k, s in enumerate(graph.stages) if s.kind == "model"), len(graph.stages))
        self._ahead, self._rest = graph.stages[:first_model], graph.stages[first_model:]
        import torch

        # Model stages set torch's intra-op threads (process-wide) when built; the caller gets its own back on
        # exit (a probe that labels, then trains students in the same process, would train on one thread).
        self._caller_threads = torch.get_num_threads()
        self.stages = {spec.name: spec.build(context) for spec in graph.stages}
        self.gate = TestGate.from_env()  # in this process: N batches in all, counted at the first model stage
        self._gated = next((s.name for s in self._rest if s.kind == "model"), None)

    def __enter__(self) -> "LocalExecutor":
        return self

    def __exit__(self, *exc) -> None:
        import torch

        torch.set_num_threads(self._caller_threads)

    def _run(self, specs, batch: dict, isolate: bool = True) -> dict:
        for spec in specs:
            if spec.name == self._gated and self.gate is not None:
                self.gate.wait()
            stage = self.stages[spec.name]
            batch = run_stage(spec, stage, batch) if isolate else check_written(spec, stage(batch))
            batch = _stamp_worker(spec, batch, f"{os.uname().nodename}:{os.getpid()}:{threading.current_thread().name}")
        return batch

    def lost_work(self, error: BaseException) -> bool:
        """Nothing is lost in one process without the error reaching the driver as what it is."""
        return False

    def log_location(self) -> str | None:
        return None

    def batches(self, frames: "PendingFrames") -> Iterator[dict]:
        """The graph's output batches, in the order they finish; the frames are read as a stream and at most
        decode_threads + model_threads + 1 batches are decoded ahead (bounded memory whatever their number)."""
        chunks = frames.iter_batches(self.batch_size)

        with (
            ThreadPoolExecutor(self.decode_threads, thread_name_prefix="decode") as decode_pool,
            ThreadPoolExecutor(self.model_threads, thread_name_prefix="models") as model_pool,
        ):
            decoding: deque = deque()
            running: set = set()

            def feed() -> None:
                while len(decoding) < self.decode_threads + 1:
                    chunk = next(chunks, None)
                    if chunk is None:
                        return
                    decoding.append(decode_pool.submit(self._run, self._ahead, chunk))

            feed()
            while decoding or running:
                while decoding and len(running) < self.model_threads:
                    decoded = decoding.popleft()
                    running.add(model_pool.submit(lambda d=decoded: self._run(self._rest, d.result())))
                    feed()
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()

    @classmethod
    def for_teacher(
        cls,
        config: TeacherConfig,
        weights_dir: str | Path | None = None,
        calibrations: Mapping = (),
        fused: bool = False,
        batch_size: int | None = None,
    ) -> "LocalExecutor":
        """The teacher's default graph in this process, its weights checked first (WeightsMissingError names each
        missing file and where it comes from). The one-process teacher of notebooks, tests and `labels bench`."""
        from orpose.stages.graph import default_graph
        from orpose.teachers.weights import WeightsMissingError, missing_checkpoints, missing_message

        weights_dir = Path(weights_dir or config.weights_dir)
        missing = missing_checkpoints(config, weights_dir)
        if missing:
            raise WeightsMissingError(missing_message(config, missing))
        from orpose.teachers.install_check import check_kernels_available

        check_kernels_available(config)
        return cls(
            default_graph(fused),
            StageContext(config, weights_dir, dict(calibrations)),
            batch_size or config.run.batch_size,
        )

    def label_images(self, images: list[np.ndarray]) -> list[dict]:
        """The model stages on images in memory (BGR uint8), all in one batch: per image a dict of the
        columns the model stages write (boxes, scores, mask_rle, keypoints, spread, hard_mask, hard_valid,
        pose_soft, pose_hard; see `labels graph`)."""
        return self.label_images_by_stage(images, contextlib.nullcontext)

    def label_images_by_stage(self, images: list[np.ndarray], around: Callable[[str], ContextManager]) -> list[dict]:
        """`label_images`, each model stage run inside `around(stage name)` (e.g. a FLOP counter per stage)."""
        n = len(images)
        batch = {
            "frame_id": np.array([f"image{i}" for i in range(n)], dtype=object),
            "color": objects(images),
            REJECT_REASON: np.array([""] * n, dtype=object),
            REJECT_DETAIL: np.array([""] * n, dtype=object),
        }
        models = [s for s in self.graph.stages if s.kind == "model"]
        for spec in models:
            with around(spec.name):
                batch = self._run([spec], batch, isolate=False)  # a caller's own images: errors are raised to it
        written = [c for spec in models for c in spec.writes]
        return [{column: batch[column][i] for column in written} for i in range(n)]


# The CPU of the task that reads a plan part and cuts it into batches (RayExecutor.batches): on top of what the
# actor pools reserve, or the read would wait for ever behind them.
READ_CPUS = 1


def requested_cpus(graph: StageGraph, context: StageContext) -> float:
    """CPUs a Ray run reserves: every actor pool's, plus the plan read's."""
    resources = [stage_resources(spec, context.config.run) for spec in graph.stages]
    return sum(r.actors * r.cpus for r in resources) + READ_CPUS


class _RayStage:
    """A stage as Ray Data's callable class: built in its actor from the spec and the context."""

    def __init__(self, spec: StageSpec, context: StageContext, gate: TestGate | None = None):
        import ray

        self.spec, self.stage, self.gate = spec, spec.build(context), gate
        runtime = ray.get_runtime_context()
        # node id first: the run summary tells the nodes apart by it (two nodes of one machine share a hostname)
        self.worker = f"{runtime.get_node_id()[:12]}:{os.getpid()}:{runtime.get_actor_id()[-8:]}"

    def __call__(self, batch: dict) -> dict:
        if self.gate is not None and self.spec.kind == "model":
            self.gate.wait()
        return _stamp_worker(self.spec, run_stage(self.spec, self.stage, batch), self.worker)


def _ray_stage_class(spec: StageSpec) -> type:
    """`_RayStage` under the stage class's own name (e.g. KeypointStage, FusedModelStage): Ray names the
    operator and its worker processes after it (`ray::MapWorker(MapBatches(KeypointStage))`), which is
    what a user sees in `ps`, Ray's logs and its dashboard."""
    name = getattr(spec.cls, "__name__", spec.name)
    return type(name, (_RayStage,), {"__qualname__": name, "__doc__": _RayStage.__doc__})


class RayExecutor:
    """The graph as a Ray Data pipeline; starts (and stops) a local Ray unless one is running or `address` is given."""

    def __init__(
        self,
        graph: StageGraph,
        context: StageContext,
        batch_size: int,
        address: str | None = None,
        verbose: bool = False,
    ):
        self.graph, self.context, self.batch_size, self.address = graph, context, batch_size, address
        self.verbose = verbose
        self._started = False

    def __enter__(self) -> "RayExecutor":
        needed = requested_cpus(self.graph, self.context)
        self._started = start_ray(self.address, needed, self.verbose)
        import ray

        available = ray.cluster_resources().get("CPU", 0.0)
        if available < needed:  # Ray would wait for ever for the CPUs of the last pool or of the plan read
            if self._started:
                ray.shutdown()
            raise ValueError(
                f"the Ray cluster has {available:g} CPUs, and this run needs {needed:g}: the actor pools "
                f"(run.*_actors x run.cpus_per_actor, run.cpu_tasks x {CPU_STAGE_CPUS:g}) and {READ_CPUS} for reading "
                "the plan. Add CPUs to the cluster, or lower run.cpus_per_actor or the actor counts"
            )
        return self

    def lost_work(self, error: BaseException) -> bool:
        """True when `error` (or what it wraps) says a node, a worker, an actor or an object was lost: the
        driver then runs the uncommitted shards again, with new actors. An error of a stage's own code is
        not lost work: it is raised as it is."""
        return _is_lost_work(error)

    def log_location(self) -> str | None:
        """Ray's session log folder (on the head node when joining a cluster)."""
        try:
            import ray

            node = ray._private.worker._global_node  # Ray has no public accessor for the session folder
            return str(Path(node.get_session_dir_path()) / "logs") if node is not None else None
        except Exception:
            return "/tmp/ray/session_latest/logs on the head node"

    def __exit__(self, *exc) -> None:
        if self._started:
            import ray

            ray.shutdown()

    def batches(self, frames: "PendingFrames") -> Iterator[dict]:
        """The graph's output batches. The pending frames are read from the plan's Parquet parts by Ray's
        workers (`plan_dataset`).

        Actors are not restarted by Ray (max_restarts=0): Ray Data passes each actor's constructor arguments
        as objects in the object store, which a restart after the loss of their node could not read back.
        A lost actor, node or object ends this dataset with an error instead; the driver
        (`pipeline.run`) then labels the uncommitted shards again with new actors."""
        import warnings

        import ray.data

        # Restart and retry settings have no named map_batches parameter yet; Ray warns on the generic path.
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*")
        if not self.verbose:  # Ray Data's advice on pool sizes and the like: in its log folder, not the console
            warnings.filterwarnings("ignore", module=r"ray\.data\..*")
        data_context = ray.data.DataContext.get_current()
        data_context.enable_progress_bars = False  # the driver shows one bar with per-stage figures
        data_context.execution_options.preserve_order = False
        ds = plan_dataset(frames)
        # Blocks of batch_size rows. Ray Data merges what one task yields into blocks up to
        # DataContext.target_max_block_size (128 MiB): a plan part's rows (paths: a few MB for 262,144 frames)
        # became one block, which one actor labelled whole and sent back at its end. A streaming repartition
        # cuts them into blocks of batch_size rows, so each actor task is one batch, its output a block of its
        # own that reaches the driver as soon as it is done. Ray fuses it into the read task when both ask for
        # the same resources: one CPU (READ_CPUS), which the local Ray adds and a cluster must have free.
        ds = ds.repartition(target_num_rows_per_block=self.batch_size)
        gate = TestGate.from_env()
        for spec in self.graph.stages:
            r = stage_resources(spec, self.context.config.run)
            gpus = dict(num_gpus=r.gpus) if r.gpus else {}
            ds = ds.map_batches(
                _ray_stage_class(spec),
                fn_constructor_kwargs=dict(spec=spec, context=self.context, gate=gate),
                batch_size=self.batch_size,
                batch_format="numpy",
                # Backpressure: an actor holds at most this many batches (the one it runs and the next),
                # whatever the part size; tasks go to the pool's least-loaded actor, so every actor gets work.
                compute=ray.data.ActorPoolStrategy(
                    size=r.actors, max_tasks_in_flight_per_actor=MAX_TASKS_IN_FLIGHT_PER_ACTOR
                ),
                num_cpus=r.cpus,
                **gpus,
                max_restarts=0,
                max_task_retries=0,
            )
        # prefetch_batches=0: with prefetching, Ray Data hands over a block only once the next one has
        # arrived (its sliding window fetches ahead before yielding), so the driver would lag one batch
        # behind the models; each block is one small batch of records, nothing worth prefetching.
        yield from ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=0)


def plan_dataset(frames: "PendingFrames"):
    """A Ray Dataset of the pending rows: one read task per plan part, run on Ray's workers, each reading
    its part and keeping the pending shards' rows (`label_store.plan.pending_rows`). Ray Data merges a task's
    output into blocks of up to 128 MiB, so a part comes out as one block: `RayExecutor.batches` cuts it into
    batches. A read task takes one CPU (Ray's default), reserved beside the actor pools (READ_CPUS)."""
    import ray.data

    parts = [{"part": path} for path in frames.part_files()]
    return ray.data.from_items(parts, override_num_blocks=len(parts)).map_batches(
        _read_pending_part, fn_kwargs=dict(shards=frames.shards), batch_size=1, batch_format="pyarrow"
    )


def _read_pending_part(batch, shards: np.ndarray):
    """The pending rows of the plan part named by the batch's one row (a Ray read task)."""
    from orpose.label_store.plan import pending_rows

    (path,) = batch.column("part").to_pylist()
    return pending_rows(path, shards)


def _is_lost_work(error: BaseException | None) -> bool:
    """True when Ray itself failed under the work (a node, worker, actor or object lost, a system error): any
    Ray error but a task's own error, looked for through what the error wraps (Ray Data re-raises a task's
    error with its cause). A RayTaskError, or Ray Data's UserCodeException, whose cause is a stage's exception
    (a bug, a bad input) is not: retrying it would fail the same way (a decoding bug was once retried 3 times
    and reported as lost work)."""
    import ray.exceptions

    own_errors = (ray.exceptions.RayTaskError, ray.exceptions.UserCodeException)
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, ray.exceptions.RayError) and not isinstance(error, own_errors):
            return True
        error = getattr(error, "cause", None) or error.__cause__ or error.__context__
    return False


def quiet_ray_data(verbose: bool) -> None:
    """Ray Data's console lines go only to its log files unless `verbose`; its files keep everything
    (the 'ray.data' logger's file handlers are left alone). Errors too: a lost actor or node is reported
    by the driver in one line (and retried), any other error is raised to the user as it is."""
    import ray.data  # noqa: F401  (configures the 'ray.data' logger on import)

    for handler in logging.getLogger("ray.data").handlers:
        if not isinstance(handler, logging.FileHandler) and type(handler).__name__ != "SessionFileHandler":
            handler.setLevel(logging.INFO if verbose else logging.CRITICAL)


def start_ray(address: str | None, cpus_needed: float, verbose: bool = False) -> bool:
    """Join the cluster at `address` / RAY_ADDRESS, or start a local Ray; False when Ray was already running.
    Ray's own console lines (its notices and warnings) are shown with `verbose` only."""
    import ray

    if ray.is_initialized():
        return False
    level = logging.INFO if verbose else logging.ERROR
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=verbose, logging_level=level)
    else:  # the embedded default: a Ray instance on this machine, no dashboard (memory). Its logical
        # CPUs cover what the actor pools ask for, so every pool can start; the OS shares the cores.
        cpus = max(os.cpu_count() or 1, math.ceil(cpus_needed))
        ray.init(
            address="local",  # always an instance of its own, never a cluster `ray start` left on this machine
            include_dashboard=False,
            log_to_driver=verbose,
            logging_level=level,
            num_cpus=cpus,
            object_store_memory=min(2 * 1024**3, int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.1)),
        )
    quiet_ray_data(verbose)  # our bar and summary say what Ray Data's INFO lines say
    return True


def make_executor(
    kind: str,
    graph: StageGraph,
    context: StageContext,
    batch_size: int,
    address: str | None = None,
    verbose: bool = False,
) -> Executor:
    """The executor named `kind` ("ray" or "local") over `graph`; use it as a context manager.

    Torch's intra-op threads: Ray's actors share the machine, each takes run.torch_threads. In-process,
    the models run on run.detector_actors threads: one takes every core, several take run.torch_threads each.
    """
    if kind == "local" and address:
        raise ValueError("--address names a Ray cluster; the local executor runs in this process (use --executor ray)")
    run = context.config.run
    if kind == "local":
        threads = run.torch_threads if run.detector_actors > 1 else None
        return LocalExecutor(
            graph, replace(context, torch_threads=threads), batch_size, model_threads=run.detector_actors
        )
    if kind == "ray":
        return RayExecutor(graph, replace(context, torch_threads=run.torch_threads), batch_size, address, verbose)
    raise ValueError(f"unknown executor {kind!r} (known: {', '.join(EXECUTORS)})")
