"""The stage contract, declared on the stage class.

A stage is a class built with `from_config(StageContext)` and called as `stage(batch) -> batch`. Its class
declares what the graph (`stages.graph`) needs to know without building it:

- `name`: the stage's name; its timing column (`seconds_<name>`), its out-of-memory messages and the
  reject detail of a frame it raised on all take it from here;
- `kind`: "cpu" (light Python work), "model" (holds a model; the executors give such a stage the model
  actors' CPUs and GPUs, `pipeline.resources`) or "shard" (runs on a whole shard's rows in the driver, just
  before the shard is committed, whichever executor labelled them: `stages.fuse`, which needs every view of an
  instant, and the plan keeps an instant's frames in one shard);
- `reads`, `writes`, `drops`: the batch columns (`stages.rows`) it reads, adds and removes. The graph checks
  them when it is built, and the executors check after each call that the declared columns were written.

A stage module imports nothing heavy at its top (torch and the model packages come in `from_config`), so
that the graph can list the classes themselves and the driver and CPU workers stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, ClassVar, Literal

from orpose.stages._batching import with_oom_backoff
from orpose.stages.rows import Timer

if TYPE_CHECKING:
    from orpose.stages.context import StageContext
    from orpose.stages.graph import StageSpec

__all__ = ["Stage"]


class Stage:
    """Base class of the pipeline's stages: the contract as class attributes, and the helpers that use it."""

    name: ClassVar[str]
    kind: ClassVar[Literal["cpu", "model", "shard"]]
    reads: ClassVar[tuple[str, ...]]
    writes: ClassVar[tuple[str, ...]]
    drops: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def spec(cls) -> "StageSpec":
        """The declaration as the graph holds it."""
        from orpose.stages.graph import StageSpec

        return StageSpec(cls.name, cls, cls.kind, cls.reads, cls.writes, cls.drops)

    @classmethod
    def from_config(cls, context: "StageContext") -> "Stage":
        raise NotImplementedError

    def __call__(self, batch: dict) -> dict:
        raise NotImplementedError

    def timer(self) -> Timer:
        """Times the work on a batch and writes this stage's `seconds_<name>` column (`Timer.stamp`)."""
        return Timer(self.name)

    def within_memory(self, run: Callable[[list], list], items: list) -> list:
        """`run(items)`, split in halves on an out-of-memory error (`stages._batching.with_oom_backoff`)."""
        return with_oom_backoff(run, items, self.name)
