"""Make a large run out of a small real one, to measure commands that read runs (`labels report`,
`labels inspect`) at scale without labelling 100k frames. Usage:

    .venv/bin/python tools/replicate_run.py RUN OUT --frames 100000 [--shard-size 256]

Each frame of RUN is written again as `<frame id>#<copy>` (same labels, same image paths, same
provenance) into committed shards of OUT with a plan, so `labels verify OUT` passes. The result is
for measurements only: its frames are copies, not labels of anything new.
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from orpose.frames.sources import FrameRef, ref_batch  # noqa: E402
from orpose.label_store.plan import write_plan  # noqa: E402
from orpose.label_store.reader import LabelRun  # noqa: E402
from orpose.label_store.schema import PERSON_FIELDS  # noqa: E402
from orpose.label_store.shard import FrameRecord, commit_shard  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("out")
    parser.add_argument("--frames", type=int, required=True, help="frames of the replicated run")
    parser.add_argument("--shard-size", type=int, default=256)
    args = parser.parse_args()
    start = time.perf_counter()
    run = LabelRun(args.run)
    # the shard's own attributes again: JSON fields re-encoded as written (sorted keys)
    raw = {k: (json.dumps(v, sort_keys=True) if k.endswith("_json") else v) for k, v in run.provenance().items()}
    originals = list(run)
    person_fields = [f.name for f in PERSON_FIELDS if f.name != "frame_index"]
    out = Path(args.out)
    plan, batch, shard = [], [], 0
    for n in range(args.frames):
        labels = originals[n % len(originals)]
        frame = dict(labels.frame, frame_id=f"{labels.frame_id}#{n // len(originals)}")
        persons = {k: labels.persons[k] for k in person_fields} if len(labels) else {}
        batch.append(FrameRecord(frame, persons))
        if len(batch) == args.shard_size or n == args.frames - 1:
            commit_shard(out, shard, batch, raw)
            plan.append([r.frame for r in batch])
            batch, shard = [], shard + 1
    frames = [r for shard_records in plan for r in shard_records]
    refs = [FrameRef(f["frame_id"], f["camera_id"], f["color_path"], f.get("depth_path") or None) for f in frames]
    write_plan(out, [ref_batch(refs)], args.shard_size, None, f"replicated from {args.run}")
    print(f"wrote {args.frames} frames in {shard} shards to {out} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
