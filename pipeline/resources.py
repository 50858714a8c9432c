"""What each stage's workers reserve on Ray, from the run settings (`configs.schema.RunSpec`): the executors'
policy, per stage, apart from the graph (which says what a stage reads and writes, not where it runs).

- a CPU stage (decode, assemble): `run.cpu_actors` actors of CPU_STAGE_CPUS each;
- a model stage: the actors, CPUs and GPUs of its own run fields (`MODEL_POOLS`): detect ->
  run.detector_actors / run.detector_gpus, keypoints -> run.keypoint_*, lift -> run.lifter_*;
  `run.cpus_per_actor` CPUs each, and `run.gpus_per_actor` GPUs where the stage's own field is unset;
- a fused stage (`stages.graph.fuse_models`): the pool of its first model part, the detector's: one actor
  per device holds every model, and the detector is the model that sets how many devices a run uses.
"""

from __future__ import annotations

from dataclasses import dataclass

from orpose.configs.schema import RunSpec
from orpose.stages.graph import StageGraph, StageSpec

__all__ = ["Resources", "CPU_STAGE_CPUS", "MODEL_POOLS", "stage_resources", "describe_graph"]

CPU_STAGE_CPUS = 0.25  # decode and assemble are light; they share cores with the model actors

# model stage -> (its actor count field, its GPU field) of RunSpec
MODEL_POOLS = {
    "detect": ("detector_actors", "detector_gpus"),
    "keypoints": ("keypoint_actors", "keypoint_gpus"),
    "lift": ("lifter_actors", "lifter_gpus"),
}


@dataclass(frozen=True)
class Resources:
    """What the Ray executor reserves for a stage: `actors` processes, each with `cpus` and `gpus`."""

    actors: int
    cpus: float
    gpus: float


def stage_resources(spec: StageSpec, run: RunSpec) -> Resources:
    """The pool of `spec`'s workers under `run` (see the module docstring)."""
    if spec.kind == "cpu":
        return Resources(run.cpu_actors, CPU_STAGE_CPUS, 0.0)
    pool = spec.name
    if spec.parts:  # fused: the first model part's pool
        pool = next(part.name for part in spec.parts if part.kind == "model")
    if pool not in MODEL_POOLS:
        raise ValueError(f"model stage '{spec.name}' has no pool in the run settings (known: {', '.join(MODEL_POOLS)})")
    actors_field, gpus_field = MODEL_POOLS[pool]
    gpus = getattr(run, gpus_field)
    return Resources(getattr(run, actors_field), run.cpus_per_actor, run.gpus_per_actor if gpus is None else gpus)


def _columns(spec: StageSpec) -> list[str]:
    """A stage's columns read, written (its timings too) and dropped, as `describe_graph` prints them."""
    lines = [f"     reads  : {', '.join(spec.reads)}", f"     writes : {', '.join((*spec.writes, *spec.timings))}"]
    return lines + ([f"     drops  : {', '.join(spec.drops)}"] if spec.drops else [])


def describe_graph(graph: StageGraph, run: RunSpec | None = None) -> list[str]:
    """Printable lines: each stage with its kind, resources, columns read, written and dropped."""
    run = run or RunSpec()
    lines = [f"source columns: {', '.join(graph.source_columns)}"]
    for k, spec in enumerate(graph.stages, 1):
        r = stage_resources(spec, run)
        parts = f" = {' -> '.join(p.name for p in spec.parts)} in one process" if spec.parts else ""
        lines.append(
            f"{k}. {spec.name} ({spec.kind}{parts}; Ray: {r.actors} actor(s) x {r.cpus:g} CPU"
            + (f" + {r.gpus:g} GPU" if r.gpus else "")
            + f"; class {getattr(spec.cls, '__name__', spec.cls)})"
        )
        lines += _columns(spec)
    for spec in graph.shard_stages:
        lines.append(
            f"then, on each whole shard in the driver before its commit: {spec.name} (shard; "
            f"class {getattr(spec.cls, '__name__', spec.cls)})"
        )
        lines += _columns(spec)
    lines.append(f"to the driver: {', '.join(graph.output_columns())}")
    return lines
