"""The stage graph, declared once: which stages run in which order, what each needs to run, and
which columns of the batch (`stages.rows`) each reads, writes and drops.

    decode (CPU) -> detect -> keypoints -> lift (model stages) -> assemble (CPU) -> the driver

Both executors run this declaration: the Ray executor (`pipeline.executors.RayExecutor`, one
actor pool per stage) and the in-process one (`pipeline.executors.LocalExecutor`). Building a
graph checks its contract: every column a stage reads is a source column or written by a stage
upstream and not dropped since; a broken contract fails at build time naming the stage and the
column (`ContractError`). `fuse_models` turns the consecutive model stages into one stage, so
that one process (one Ray actor per device) holds all three models. `labels graph` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

from orpose.configs.schema import RunSpec
from orpose.errors import OrPoseError
from orpose.stages.context import StageContext
from orpose.stages.rows import REJECT_DETAIL, REJECT_REASON, SOURCE_COLUMNS, timing_column

__all__ = [
    "StageSpec",
    "StageGraph",
    "ContractError",
    "build_graph",
    "default_graph",
    "fuse_models",
    "FusedModelStage",
    "Resources",
    "stage_resources",
    "describe_graph",
    "FUSED_NAME",
]

FUSED_NAME = "models"


class ContractError(OrPoseError, ValueError):
    """A stage reads a column that nothing upstream writes (or that an upstream stage dropped)."""


@dataclass(frozen=True)
class StageSpec:
    """One stage: its class (built by `cls.from_config(StageContext)`, called as `stage(batch) -> batch`),
    its kind ("cpu": light Python work; "model": holds a model, reserves the model actors' CPUs/GPUs),
    and its columns. `timings` names the `seconds_<name>` columns it writes (itself, or its parts when fused)."""

    name: str
    cls: type
    kind: Literal["cpu", "model"]
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    drops: tuple[str, ...] = ()
    parts: tuple["StageSpec", ...] = ()  # the stages a fused stage runs, in order

    @property
    def timings(self) -> tuple[str, ...]:
        return tuple(timing_column(part.name) for part in self.parts) if self.parts else (timing_column(self.name),)

    def build(self, context: StageContext):
        if self.parts:
            return FusedModelStage(stages=[part.build(context) for part in self.parts], specs=self.parts)
        return self.cls.from_config(context)


@dataclass(frozen=True)
class StageGraph:
    source_columns: tuple[str, ...]
    stages: tuple[StageSpec, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.stages)

    @property
    def timed_stages(self) -> tuple[str, ...]:
        """The names of the `seconds_<name>` columns, in order (the fused stage's parts one by one)."""
        return tuple(t.removeprefix("seconds_") for spec in self.stages for t in spec.timings)

    def output_columns(self) -> tuple[str, ...]:
        return _check_contract(self.source_columns, self.stages)


def _check_contract(source_columns: Sequence[str], stages: Sequence[StageSpec]) -> tuple[str, ...]:
    available = list(source_columns)
    for spec in stages:
        for column in spec.reads:
            if column not in available:
                raise ContractError(
                    f"stage '{spec.name}' reads column '{column}', which no stage before it writes "
                    f"(available there: {', '.join(available)})"
                )
        for column in spec.drops:
            if column not in available:
                raise ContractError(f"stage '{spec.name}' drops column '{column}', which is not there")
        available = [c for c in available if c not in spec.drops]
        available += [c for c in (*spec.writes, *spec.timings) if c not in available]
    return tuple(available)


def build_graph(stages: Sequence[StageSpec], source_columns: Sequence[str] = SOURCE_COLUMNS) -> StageGraph:
    """A graph of `stages` in this order; raises ContractError naming the stage and the column."""
    names = [spec.name for spec in stages]
    if len(set(names)) != len(names):
        raise ContractError(f"stage names must be unique: {names}")
    _check_contract(source_columns, stages)
    return StageGraph(tuple(source_columns), tuple(stages))


class FusedModelStage:
    """Runs several stages one after the other in one process (one actor holds every model, and on CPUs the
    stages around them too). Each part is called as the executors call a stage (`stages.isolation.run_stage`):
    a frame on which a part raises is rejected naming that part, and the rest of the batch goes on."""

    def __init__(self, *, stages: Sequence, specs: Sequence[StageSpec]):
        self.stages, self.specs = list(stages), list(specs)

    def __call__(self, batch: dict) -> dict:
        from orpose.stages.isolation import run_stage

        for spec, stage in zip(self.specs, self.stages):
            batch = run_stage(spec, stage, batch)
        return batch


def fuse_models(graph: StageGraph, whole: bool = False) -> StageGraph:
    """The same graph with its consecutive model stages run as one stage named FUSED_NAME; `whole`: every
    stage, the CPU stages around the models too, in that one stage (one process per model actor runs the
    whole graph: no decode or assemble actors, no hand-over between them)."""
    stages: list[StageSpec] = []
    run: list[StageSpec] = []

    def flush():
        if len(run) > 1:
            parts = tuple(part for spec in run for part in (spec.parts or (spec,)))  # a fused stage taken apart
            written = [c for spec in parts for c in spec.writes]
            dropped = [c for spec in parts for c in spec.drops]
            reads = []
            for k, spec in enumerate(parts):  # what the group reads from outside itself
                inside = {c for earlier in parts[:k] for c in earlier.writes}
                reads += [c for c in spec.reads if c not in inside and c not in reads]
            stages.append(
                StageSpec(
                    FUSED_NAME,
                    FusedModelStage,
                    "model",
                    tuple(reads),
                    tuple(c for c in written if c not in dropped),
                    tuple(c for c in dropped if c not in written),
                    parts,
                )
            )
        else:
            stages.extend(run)
        run.clear()

    for spec in graph.stages:
        if spec.kind == "model" or whole:
            run.append(spec)
        else:
            flush()
            stages.append(spec)
    flush()
    return build_graph(stages, graph.source_columns)


def default_graph(fused: bool | str = False) -> StageGraph:
    """The teacher's graph: decode -> detect -> keypoints -> lift -> assemble (fused: decode -> models -> assemble;
    fused="whole": one stage runs all five, `fuse_models(whole=True)`)."""
    from orpose.stages.assemble import PERSON_COLUMNS, AssembleStage
    from orpose.stages.decode import DecodeStage

    # The model stages import torch and mmcv: the graph is declared with their classes by name and
    # resolved on first use, so that `labels graph` and the CPU workers do not pay for the import.
    graph = build_graph(
        [
            StageSpec(
                "decode",
                DecodeStage,
                "cpu",
                reads=("frame_id", "camera_id", "color_path", "depth_path", "timestamp"),
                writes=("color", "depth_encoded", REJECT_REASON, REJECT_DETAIL),
            ),
            StageSpec(
                "detect",
                _lazy("orpose.stages.detect", "DetectStage"),
                "model",
                reads=("color", REJECT_REASON),
                writes=("boxes", "scores", "mask_rle"),
            ),
            StageSpec(
                "keypoints",
                _lazy("orpose.stages.keypoints", "KeypointStage"),
                "model",
                reads=("color", "boxes", REJECT_REASON),
                writes=("keypoints", "spread"),
                drops=("color",),
            ),
            StageSpec(
                "lift",
                _lazy("orpose.stages.lift", "LiftStage"),
                "model",
                reads=("keypoints", "boxes"),
                writes=("hard_mask", "hard_valid", "pose_soft", "pose_hard"),
            ),
            StageSpec(
                "assemble",
                AssembleStage,
                "cpu",
                reads=(
                    "frame_id",
                    "camera_id",
                    "color_path",
                    "depth_path",
                    "timestamp",
                    "depth_encoded",
                    REJECT_REASON,
                    REJECT_DETAIL,
                    *PERSON_COLUMNS,
                ),
                writes=("record",),
                drops=("depth_encoded", *PERSON_COLUMNS),
            ),
        ]
    )
    return fuse_models(graph, whole=fused == "whole") if fused else graph


class _lazy:
    """A stage class named by module and attribute, imported when the stage is built."""

    def __init__(self, module: str, name: str):
        self.module, self.__name__ = module, name

    def resolve(self) -> type:
        import importlib

        return getattr(importlib.import_module(self.module), self.__name__)

    def from_config(self, context: StageContext):
        return self.resolve().from_config(context)

    def __repr__(self) -> str:
        return f"{self.module}.{self.__name__}"

    def __eq__(self, other) -> bool:  # two declarations of one class are the same stage class
        return isinstance(other, _lazy) and (self.module, self.__name__) == (other.module, other.__name__)

    def __hash__(self) -> int:
        return hash((self.module, self.__name__))


@dataclass(frozen=True)
class Resources:
    """What the Ray executor reserves for a stage: `actors` processes, each with `cpus` and `gpus`."""

    actors: int
    cpus: float
    gpus: float


CPU_STAGE_CPUS = 0.25  # decode and assemble are light; they share cores with the model actors


def stage_resources(spec: StageSpec, run: RunSpec) -> Resources:
    if spec.kind == "cpu":
        return Resources(run.cpu_actors, CPU_STAGE_CPUS, 0.0)
    actors = {"detect": run.detector_actors, "keypoints": run.keypoint_actors, "lift": run.lifter_actors}
    gpus = {"detect": run.detector_gpus, "keypoints": run.keypoint_gpus, "lift": run.lifter_gpus}.get(spec.name)
    return Resources(
        actors.get(spec.name, run.detector_actors), run.cpus_per_actor, run.gpus_per_actor if gpus is None else gpus
    )


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
        lines.append(f"     reads  : {', '.join(spec.reads)}")
        lines.append(f"     writes : {', '.join((*spec.writes, *spec.timings))}")
        if spec.drops:
            lines.append(f"     drops  : {', '.join(spec.drops)}")
    lines.append(f"to the driver: {', '.join(graph.output_columns())}")
    return lines
