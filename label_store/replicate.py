"""A large run made of copies of a small real one, for measuring what reads runs (`labels bench-feed`,
`labels report`) at scale without labelling a million frames.

Each frame of the source is written again as `<frame id>#<copy>` (same labels, same image paths, same
provenance) into committed shards with a plan, so `labels verify` passes. Its frames are copies, not
labels of anything new: for measurements only.
"""

from __future__ import annotations

import json
from pathlib import Path

from orpose.frames.sources import FrameRef, ref_batch
from orpose.label_store.index import consolidate_index
from orpose.label_store.plan import write_plan
from orpose.label_store.reader import LabelRun
from orpose.label_store.schema import PERSON_FIELDS
from orpose.label_store.shard import FrameRecord, commit_shard

__all__ = ["replicate_run"]


def replicate_run(
    source: str | Path, out: str | Path, frames: int, shard_size: int = 256, progress: bool = False
) -> int:
    """Write `frames` copies of `source`'s frames into the run `out`; returns the number of shards."""
    from tqdm import tqdm

    run = LabelRun(source)
    # the shard's own attributes again: JSON fields re-encoded as written (sorted keys)
    raw = {k: (json.dumps(v, sort_keys=True) if k.endswith("_json") else v) for k, v in run.provenance().items()}
    originals = list(run)
    person_fields = [f.name for f in PERSON_FIELDS if f.name != "frame_index"]
    out = Path(out)
    plan, batch, shard = [], [], 0
    bar = tqdm(total=frames, desc="replicating", unit="frame", disable=not progress)
    for n in range(frames):
        labels = originals[n % len(originals)]
        frame = dict(labels.frame, frame_id=f"{labels.frame_id}#{n // len(originals)}")
        persons = {k: labels.persons[k] for k in person_fields} if len(labels) else {}
        batch.append(FrameRecord(frame, persons))
        if len(batch) == shard_size or n == frames - 1:
            commit_shard(out, shard, batch, raw)
            plan.append([r.frame for r in batch])
            bar.update(len(batch))
            batch, shard = [], shard + 1
    bar.close()
    records = [r for shard_records in plan for r in shard_records]
    refs = [FrameRef(f["frame_id"], f["camera_id"], f["color_path"], f.get("depth_path") or None) for f in records]
    write_plan(out, [ref_batch(refs)], shard_size, None, f"replicated from {source}")
    consolidate_index(out)
    return shard
