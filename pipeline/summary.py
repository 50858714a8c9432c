"""The run summary: what `labels run` prints at its end (and writes with `--summary-json`), and the error that
stops a run."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from orpose.errors import OrPoseError
from orpose.stages.graph import default_graph

__all__ = ["RunSummary", "RunError", "TIMED_STAGES"]

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
                f"{s} {self.stage_seconds[s]:.1f} s ({100 * self.stage_seconds[s] / busy:.0f} %)"
                for s in (*TIMED_STAGES, *(s for s in self.stage_seconds if s not in TIMED_STAGES))  # fuse: driver
            )
        )
        if self.engine_logs:
            out.append(f"Ray's logs: {self.engine_logs}")
        return out
