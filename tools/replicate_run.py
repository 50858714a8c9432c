"""Make a large run out of a small real one, to measure commands that read runs (`labels report`,
`labels inspect`, `labels bench-feed`) at scale without labelling 100k frames. Usage:

    .venv/bin/python tools/replicate_run.py RUN OUT --frames 100000 [--shard-size 256]

The work is `orpose.label_store.replicate.replicate_run` (also behind `labels bench-feed --replicate`).
"""

import argparse
import time

from orpose.label_store.replicate import replicate_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("out")
    parser.add_argument("--frames", type=int, required=True, help="frames of the replicated run")
    parser.add_argument("--shard-size", type=int, default=256)
    args = parser.parse_args()
    start = time.perf_counter()
    shards = replicate_run(args.run, args.out, args.frames, args.shard_size, progress=True)
    print(f"wrote {args.frames} frames in {shards} shards to {args.out} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
