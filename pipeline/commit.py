"""The driver's side of a run's output: records gathered per shard and committed, and hooks that watch.

`ShardCommitter` has the steps of Ray Data's datasinks: `write(batch)` for each batch an executor yields
(a shard is committed as soon as its last frame has arrived; the driver holds the records of the shards
in flight only; the graph's shard stages, multi-view fusion, run on the shard's rows just before),
`complete()` when the executor is done, `failed()` when the attempt broke. A frame that arrives twice (an
executor's retry) counts once, and frames of a shard already committed are ignored.

Hooks see each batch's new rows and each commit: `SummaryHook` keeps the run summary's figures,
`ProgressHook` the progress bar, `RejectGuard` stops a run that rejects too many frames. `commit_batches`
runs an executor's batches through a committer and its hooks.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from orpose.label_store.plan import Plan
from orpose.label_store.shard import commit_shard
from orpose.pipeline.executors import LABELLED_AT, worker_column
from orpose.pipeline.summary import TIMED_STAGES, RunError, RunSummary
from orpose.stages.rows import objects, timing_column

__all__ = ["ShardCommitter", "RunHook", "SummaryHook", "ProgressHook", "RejectGuard", "commit_batches"]


class RunHook:
    """Watches a run's output: `on_batch` after each batch was written (`fresh`: the indices of its rows that
    were new), `on_commit` after each shard's commit, `on_end` once, whatever happened."""

    def on_batch(self, batch: dict, fresh: list[int]) -> None:
        pass

    def on_commit(self, shard: int) -> None:
        pass

    def on_end(self) -> None:
        pass


class ShardCommitter:
    """Records gathered per shard, each shard committed when its last frame arrives (see the module)."""

    def __init__(
        self, run_dir: Path, plan: Plan, provenance: dict, hooks: Sequence[RunHook] = (), shard_stages: Sequence = ()
    ):
        self.run_dir, self.plan, self.provenance, self.hooks = Path(run_dir), plan, provenance, list(hooks)
        self.waiting: dict[int, dict[str, tuple[int, object]]] = defaultdict(dict)  # shard -> id -> (position, record)
        self.committed: set[int] = set()
        self.shard_stages = list(shard_stages)  # built shard stages (`stages.graph.StageGraph.shard_stages`)
        self.shard_stage_seconds: dict[str, float] = defaultdict(float)

    def write(self, batch: dict) -> list[int]:
        """Take the batch's rows; commit the shards they complete. Returns the indices of the rows that were new."""
        fresh = []
        for i in range(len(batch["frame_id"])):
            shard, frame_id = int(batch["shard_index"][i]), str(batch["frame_id"][i])
            if shard in self.committed or frame_id in self.waiting[shard]:
                continue
            record = batch["record"][i]
            if "instant" in batch:  # the plan's instant of the frame (-1 without fusion), on the frame's row
                record.frame["instant"] = int(batch["instant"][i])
            self.waiting[shard][frame_id] = (int(batch["position"][i]), record)
            fresh.append(i)
            if len(self.waiting[shard]) == self.plan.shard_frames(shard):
                self._commit(shard)
        return fresh

    def _commit(self, shard: int) -> None:
        records = [record for _, record in sorted(self.waiting.pop(shard).values(), key=lambda pr: pr[0])]
        if self.shard_stages:
            rows = {"frame_id": objects([r.frame["frame_id"] for r in records]), "record": objects(records)}
            for stage in self.shard_stages:
                rows = stage(rows)
                self.shard_stage_seconds[stage.name] += float(np.sum(rows[timing_column(stage.name)]))
            records = list(rows["record"])
        commit_shard(self.run_dir, shard, records, self.provenance)
        self.committed.add(shard)
        for hook in self.hooks:
            hook.on_commit(shard)

    def complete(self) -> int:
        """The executor is done: the frames of shards still incomplete (lost on the way) are dropped, to be
        labelled by the next attempt. Returns their number."""
        return self._drop_waiting()

    def failed(self) -> int:
        """The attempt broke: the records in flight are dropped (their shards stay pending). Returns their number."""
        return self._drop_waiting()

    def _drop_waiting(self) -> int:
        dropped = sum(len(frames) for frames in self.waiting.values())
        self.waiting.clear()
        return dropped


class SummaryHook(RunHook):
    """The run summary's figures: frames, persons, busy seconds per stage, frames per model worker, the steady
    state after the first batch, the first commit and the last labelled batch (`RunSummary`)."""

    def __init__(self, summary: RunSummary, models: dict[str, tuple[str, ...]], started_at: float):
        self.summary, self.models, self.started_at = summary, models, started_at
        self.first_batch_at: float | None = None

    def on_batch(self, batch: dict, fresh: list[int]) -> None:
        summary, steady = self.summary, self.first_batch_at is not None
        if not steady:
            self.first_batch_at = time.perf_counter()
        else:
            summary.steady_frames += len(batch["frame_id"])
            summary.steady_seconds = time.perf_counter() - self.first_batch_at
        if LABELLED_AT in batch and len(batch[LABELLED_AT]):
            labelled = float(np.max(batch[LABELLED_AT])) - self.started_at
            summary.last_labelled_seconds = max(summary.last_labelled_seconds or 0.0, labelled)
        for i in fresh:
            self._count_row(batch, i, steady)

    def _count_row(self, batch: dict, i: int, steady: bool) -> None:
        summary = self.summary
        for stage in TIMED_STAGES:
            summary.stage_seconds[stage] += float(batch[timing_column(stage)][i])
        for pool, parts in self.models.items():
            if worker_column(pool) in batch:
                workers = summary.frames_per_worker.setdefault(pool, {})
                worker = str(batch[worker_column(pool)][i])
                workers[worker] = workers.get(worker, 0) + 1
            if steady:
                busy = sum(float(batch[timing_column(part)][i]) for part in parts)
                summary.steady_model_seconds[pool] = summary.steady_model_seconds.get(pool, 0.0) + busy
        record = batch["record"][i]
        if record.frame["reject_reason"]:
            summary.frames_rejected[record.frame["reject_reason"]] += 1
            return
        summary.frames_labelled += 1
        if record.num_persons:
            summary.persons += record.num_persons
            summary.soft_keypoints += 17 * record.num_persons
            summary.hard_persons += int(np.sum(record.persons["hard_valid"]))
            summary.hard_keypoints += int(np.sum(record.persons["hard_mask"]))

    def on_commit(self, shard: int) -> None:
        if self.summary.first_commit_seconds is None:
            self.summary.first_commit_seconds = time.time() - self.started_at
        self.summary.shards_committed += 1


class ProgressHook(RunHook):
    """The progress bar: frames processed, each stage's share of the busy time, frames rejected so far."""

    def __init__(self, summary: RunSummary, total: int, enabled: bool):
        from tqdm import tqdm

        self.summary = summary
        self.bar = tqdm(total=total, desc="labelling", unit="frame", disable=not enabled, smoothing=0.1)

    def on_batch(self, batch: dict, fresh: list[int]) -> None:
        seconds = self.summary.stage_seconds
        busy = sum(seconds.values()) or 1.0
        self.bar.update(len(batch["frame_id"]))
        self.bar.set_postfix_str(
            " ".join(f"{s[:4]}={100 * seconds[s] / busy:.0f}%" for s in TIMED_STAGES)
            + f" rejected={sum(self.summary.frames_rejected.values())}"
        )

    def on_end(self) -> None:
        self.bar.close()


class RejectGuard(RunHook):
    """Stops the run (RunError) once more than `max_fraction` of the frames processed by this invocation were
    rejected, judged after min(50, total) frames; the message counts the reasons and quotes the first stage
    error (a bug names its stage and exception there)."""

    def __init__(self, max_fraction: float, total: int, run_dir: Path):
        self.max_fraction, self.total, self.run_dir = max_fraction, total, run_dir
        self.processed, self.rejected = 0, defaultdict(int)
        self.first_detail: dict[str, str] = {}  # reject reason -> the first frame's message

    def on_batch(self, batch: dict, fresh: list[int]) -> None:
        for i in fresh:
            self.processed += 1
            frame = batch["record"][i].frame
            if frame["reject_reason"]:
                self.rejected[frame["reject_reason"]] += 1
                self.first_detail.setdefault(frame["reject_reason"], frame["reject_detail"])
        rejected = sum(self.rejected.values())
        if self.processed >= min(50, self.total) and rejected / self.processed > self.max_fraction:
            raise RunError(self.message(rejected))

    def message(self, rejected: int) -> str:
        reasons = sorted(self.rejected.items(), key=lambda item: -item[1])
        return (
            f"{rejected} of {self.processed} frames were rejected ({100 * rejected / self.processed:.0f} % > "
            f"run.max_rejected_fraction = {100 * self.max_fraction:.0f} %): "
            + ", ".join(f"{n} x {r}" for r, n in reasons)
            + (
                f". The first stage error: {self.first_detail['stage_error']}"  # a bug: the stage and exception
                if "stage_error" in self.first_detail
                else ""
            )
            + f". The committed shards in {self.run_dir} list each rejected frame with its reason."
        )


def commit_batches(batches: Iterable[dict], committer: ShardCommitter, hooks: Sequence[RunHook]) -> None:
    """Every batch through the committer, then the hooks; the committer's complete or failed step at the end."""
    try:
        for batch in batches:
            fresh = committer.write(batch)
            for hook in hooks:
                hook.on_batch(batch, fresh)
    except BaseException:
        committer.failed()
        raise
    else:
        committer.complete()
    finally:
        for hook in hooks:
            hook.on_end()
