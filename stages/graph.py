"""The stage graph, declared once: which stages run in which order, what each needs to run, and
which columns of the batch (`stages.rows`) each reads, writes and drops.

    decode (CPU) -> detect -> keypoints -> lift (model stages) -> assemble (CPU) -> the driver [-> fuse (shard)]

Both executors run this declaration: the Ray executor (`pipeline.executors.RayExecutor`, one
actor pool per stage) and the in-process one (`pipeline.executors.LocalExecutor`). Building a
graph checks its contract: every column a stage reads is a source column or written by a stage
upstream and not dropped since; a broken contract fails at build time naming the stage and the
column (`ContractError`). Each stage declares its contract on its class (`stages.base.Stage`); the
resources a stage's workers reserve are the executors' policy (`pipeline.resources`). `fuse_models` turns
the consecutive model stages into one stage, so that one process (one Ray actor per device) holds all
three models. Shard stages (`shard_stages`: `stages.fuse` when multi-view fusion is on) run in the driver on each
whole shard's rows before its commit (`pipeline.commit.ShardCommitter`), after whichever executor labelled them.
`labels graph` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

from orpose.errors import OrPoseError
from orpose.stages.context import StageContext
from orpose.stages.rows import SOURCE_COLUMNS, timing_column

__all__ = [
    "StageSpec",
    "StageGraph",
    "ContractError",
    "build_graph",
    "default_graph",
    "fuse_models",
    "FusedModelStage",
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
    kind: Literal["cpu", "model", "shard"]
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    drops: tuple[str, ...] = ()
    parts: tuple["StageSpec", ...] = ()  # the stages a fused stage runs, in order

    @property
    def timings(self) -> tuple[str, ...]:
        return tuple(timing_column(part.name) for part in self.parts) if self.parts else (timing_column(self.name),)

    def build(self, context: StageContext):
        if self.parts:
            return FusedModelStage(stages=[part.build(context) for part in self.parts])
        return self.cls.from_config(context)


@dataclass(frozen=True)
class StageGraph:
    source_columns: tuple[str, ...]
    stages: tuple[StageSpec, ...]
    shard_stages: tuple[StageSpec, ...] = ()  # run by the driver on a whole shard's output rows, in order

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.stages)

    @property
    def timed_stages(self) -> tuple[str, ...]:
        """The names of the `seconds_<name>` columns, in order (the fused stage's parts one by one)."""
        return tuple(t.removeprefix("seconds_") for spec in self.stages for t in spec.timings)

    def output_columns(self) -> tuple[str, ...]:
        return _check_contract(self.source_columns, self.stages + self.shard_stages)


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


def build_graph(
    stages: Sequence[StageSpec], source_columns: Sequence[str] = SOURCE_COLUMNS, shard_stages: Sequence[StageSpec] = ()
) -> StageGraph:
    """A graph of `stages` in this order, then `shard_stages` (on whole shards, in the driver); raises
    ContractError naming the stage and the column."""
    names = [spec.name for spec in (*stages, *shard_stages)]
    if len(set(names)) != len(names):
        raise ContractError(f"stage names must be unique: {names}")
    for spec in stages:
        if spec.kind == "shard":
            raise ContractError(f"stage '{spec.name}' runs on whole shards: give it as a shard stage")
    for spec in shard_stages:
        if spec.kind != "shard":
            raise ContractError(f"stage '{spec.name}' is a {spec.kind} stage, not a shard stage")
    _check_contract(source_columns, (*stages, *shard_stages))
    return StageGraph(tuple(source_columns), tuple(stages), tuple(shard_stages))


class FusedModelStage:
    """Runs several stages one after the other in one process (one actor holds every model, and on CPUs the
    stages around them too). The executors call each part in turn (`stages.isolation.run_stage`), so that a
    frame on which a part raises is rejected naming that part."""

    def __init__(self, *, stages: Sequence):
        self.stages = list(stages)

    def __call__(self, batch: dict) -> dict:
        for stage in self.stages:
            batch = stage(batch)
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
    return build_graph(stages, graph.source_columns, graph.shard_stages)


def default_graph(fused: bool | str = False, fusion: bool = False) -> StageGraph:
    """The teacher's graph: decode -> detect -> keypoints -> lift -> assemble (fused: decode -> models -> assemble;
    fused="whole": one stage runs all five, `fuse_models(whole=True)`), and with `fusion` the multi-view fusion
    of each shard (`stages.fuse`). Each stage's columns are declared on its class (`stages.base.Stage`)."""
    from orpose.stages.assemble import AssembleStage
    from orpose.stages.decode import DecodeStage
    from orpose.stages.detect import DetectStage
    from orpose.stages.fuse import FuseStage
    from orpose.stages.keypoints import KeypointStage
    from orpose.stages.lift import LiftStage

    graph = build_graph(
        [cls.spec() for cls in (DecodeStage, DetectStage, KeypointStage, LiftStage, AssembleStage)],
        shard_stages=[FuseStage.spec()] if fusion else (),
    )
    return fuse_models(graph, whole=fused == "whole") if fused else graph
