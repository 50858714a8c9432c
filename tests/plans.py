"""Plans made from rows in memory, for tests that hand frames to an executor (which reads a run's plan, and
nothing else)."""

from pathlib import Path

from orpose.frames.sources import REF_COLUMNS, FrameRef, ref_batch
from orpose.label_store.plan import PendingFrames, pending_frames, write_plan


def pending_from_refs(folder: Path, refs: list[FrameRef], shard_size: int = 64) -> PendingFrames:
    """Every frame of `refs`, planned in `folder` and pending."""
    plan = write_plan(folder, [ref_batch(list(refs))], shard_size, None, "test")
    return pending_frames(folder, plan)


def pending_from_ids(folder: Path, frame_ids: list[str], shard_size: int = 64) -> PendingFrames:
    """Frames that exist only as ids (for stand-in stages that read no file), planned in `folder` and pending."""
    empty = {column: [""] * len(frame_ids) for column in REF_COLUMNS}
    rows = dict(empty, frame_id=list(frame_ids), camera_id=["cam"] * len(frame_ids), timestamp=[0.0] * len(frame_ids))
    plan = write_plan(folder, [rows], shard_size, None, "test")
    return pending_frames(folder, plan)
