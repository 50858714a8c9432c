"""Two executors of one stage graph (`stages.graph`): Ray Data, and in-process.

Both take the source rows (`stages.rows.rows_from_refs`) and yield the graph's output batches
(frame_id, shard_index, record, seconds_<stage>), in any order; the driver (`pipeline.run`)
commits shards from them the same way whichever executor ran.

- `RayExecutor` (`labels run`, the default): one Ray Data `map_batches` per stage, an actor pool
  sized and reserved as `stages.graph.stage_resources` says; a local Ray by default, a cluster at
  `address` / RAY_ADDRESS.
- `LocalExecutor` (`labels run --executor local`, tests, notebooks, `labels bench`): every stage
  built once in this process; the CPU stages before the first model stage (decode) run on a small
  thread pool a few batches ahead, overlapped with the model work; no Ray, nothing to start.
  `label_images` runs the model stages on images in memory.
"""

from __future__ import annotations

import logging
import math
import os
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from configs.schema import TeacherConfig
from stages.context import StageContext
from stages.graph import StageGraph, StageSpec, stage_resources
from stages.rows import REJECT_DETAIL, REJECT_REASON, batch_from_rows, objects

__all__ = ["LocalExecutor", "RayExecutor", "make_executor", "EXECUTORS", "requested_cpus"]

EXECUTORS = ("ray", "local")


def _check_written(spec: StageSpec, batch: dict) -> dict:
    missing = [c for c in (*spec.writes, *spec.timings) if c not in batch]
    if missing:
        raise RuntimeError(f"stage '{spec.name}' did not write the column(s) it declares: {', '.join(missing)}")
    return batch


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
        self.stages = {spec.name: spec.build(context) for spec in graph.stages}

    def __enter__(self) -> "LocalExecutor":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def _run(self, specs, batch: dict) -> dict:
        for spec in specs:
            batch = _check_written(spec, self.stages[spec.name](batch))
        return batch

    def batches(self, rows: list[dict]) -> Iterator[dict]:
        """The graph's output batches, in the order they finish; at most decode_threads + model_threads + 1
        batches are decoded ahead (memory stays bounded whatever the number of rows)."""
        chunks = iter([rows[i : i + self.batch_size] for i in range(0, len(rows), self.batch_size)])

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
                    decoding.append(decode_pool.submit(self._run, self._ahead, batch_from_rows(chunk)))

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
        from stages.graph import default_graph
        from teachers.weights import WeightsMissingError, missing_checkpoints, missing_message

        weights_dir = Path(weights_dir or config.weights_dir)
        missing = missing_checkpoints(config, weights_dir)
        if missing:
            raise WeightsMissingError(missing_message(config, missing))
        return cls(
            default_graph(fused),
            StageContext(config, weights_dir, dict(calibrations)),
            batch_size or config.run.batch_size,
        )

    def label_images(self, images: list[np.ndarray]) -> list[dict]:
        """The model stages on images in memory (BGR uint8), all in one batch: per image a dict of the
        columns the model stages write (boxes, scores, mask_rle, keypoints, spread, hard_mask, hard_valid,
        pose_soft, pose_hard; see `labels graph`)."""
        n = len(images)
        batch = {
            "frame_id": np.array([f"image{i}" for i in range(n)], dtype=object),
            "color": objects(images),
            REJECT_REASON: np.array([""] * n, dtype=object),
            REJECT_DETAIL: np.array([""] * n, dtype=object),
        }
        models = [s for s in self.graph.stages if s.kind == "model"]
        batch = self._run(models, batch)
        written = [c for spec in models for c in spec.writes]
        return [{column: batch[column][i] for column in written} for i in range(n)]


def requested_cpus(graph: StageGraph, context: StageContext) -> float:
    resources = [stage_resources(spec, context.config.run) for spec in graph.stages]
    return sum(r.actors * r.cpus for r in resources)


class _RayStage:
    """A stage as Ray Data's callable class: built in its actor from the spec and the context."""

    def __init__(self, spec: StageSpec, context: StageContext):
        self.spec, self.stage = spec, spec.build(context)

    def __call__(self, batch: dict) -> dict:
        return _check_written(self.spec, self.stage(batch))


def _ray_stage_class(spec: StageSpec) -> type:
    """`_RayStage` under the stage class's own name (e.g. KeypointStage, FusedModelStage): Ray names the
    operator and its worker processes after it (`ray::MapWorker(MapBatches(KeypointStage))`), which is
    what a user sees in `ps`, Ray's logs and its dashboard."""
    name = getattr(spec.cls, "__name__", spec.name)
    return type(name, (_RayStage,), {"__qualname__": name, "__doc__": _RayStage.__doc__})


class RayExecutor:
    """The graph as a Ray Data pipeline; starts (and stops) a local Ray unless one is running or `address` is given."""

    def __init__(self, graph: StageGraph, context: StageContext, batch_size: int, address: str | None = None):
        self.graph, self.context, self.batch_size, self.address = graph, context, batch_size, address
        self._started = False

    def __enter__(self) -> "RayExecutor":
        self._started = start_ray(self.address, requested_cpus(self.graph, self.context))
        return self

    def __exit__(self, *exc) -> None:
        if self._started:
            import ray

            ray.shutdown()

    def batches(self, rows: list[dict]) -> Iterator[dict]:
        import warnings

        import ray.data

        # Restart and retry settings have no named map_batches parameter yet; Ray warns on the generic path.
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*")
        data_context = ray.data.DataContext.get_current()
        data_context.enable_progress_bars = False  # the driver shows one bar with per-stage figures
        data_context.execution_options.preserve_order = False
        ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows), len(rows) // self.batch_size)))
        for spec in self.graph.stages:
            r = stage_resources(spec, self.context.config.run)
            gpus = dict(num_gpus=r.gpus) if r.gpus else {}
            ds = ds.map_batches(
                _ray_stage_class(spec),
                fn_constructor_kwargs=dict(spec=spec, context=self.context),
                batch_size=self.batch_size,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=r.actors),
                num_cpus=r.cpus,
                **gpus,
                max_restarts=-1,
                max_task_retries=-1,
            )
        yield from ds.iter_batches(batch_size=None, batch_format="numpy")


def start_ray(address: str | None, cpus_needed: float) -> bool:
    """Join the cluster at `address` / RAY_ADDRESS, or start a local Ray; False when Ray was already running."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    else:  # the embedded default: a Ray instance on this machine, no dashboard (memory). Its logical
        # CPUs cover what the actor pools ask for, so every pool can start; the OS shares the cores.
        cpus = max(os.cpu_count() or 1, math.ceil(cpus_needed))
        ray.init(
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            num_cpus=cpus,
            object_store_memory=min(2 * 1024**3, int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.1)),
        )
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.WARNING)  # our bar and summary say what Ray's INFO lines say
    return True


def make_executor(kind: str, graph: StageGraph, context: StageContext, batch_size: int, address: str | None = None):
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
        return RayExecutor(graph, replace(context, torch_threads=run.torch_threads), batch_size, address)
    raise ValueError(f"unknown executor {kind!r} (known: {', '.join(EXECUTORS)})")
