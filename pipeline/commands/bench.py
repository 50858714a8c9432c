"""`labels bench`: the pipelines against the naive loop, side by side."""

from __future__ import annotations

import argparse
import sys

from orpose.pipeline.commands.common import add_config, add_overrides, add_weights_dir


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bench",
        help="the pipeline against the naive per-frame loop: frames/s, ratio, memory, same labels",
        description="Render N synthetic frames and label them with the naive per-frame loop "
        "(mmdet's inference_detector "
        "per TTA view, one keypoint crop per forward, the lifter per person, one h5py write per array) and with each "
        "pipeline variant (--pipelines), each in its own process. Prints frames/s of each and their ratio to the naive "
        "loop, time per stage, peak resident memory (process tree) and its ratio, whether the labels agree, the "
        "pipelines' peak memory at N and 10 x N frames and their steady state, and "
        "the FLOPs per frame with the fraction of the device's dense bf16/fp16 peak the pipeline reached.",
    )
    add_config(parser, "tiny", "teacher (default tiny)")
    parser.add_argument("--frames", type=int, default=16, help="N, frames to label (default 16)")
    parser.add_argument("--memory-factor", type=int, default=10, help="memory is also measured at this x N frames")
    add_weights_dir(parser, "folder of checkpoints (tiny: seeded ones are made if missing)")
    parser.add_argument("--keep", help="work folder to keep (frames, runs, naive output); default a temporary one")
    parser.add_argument(
        "--peak-tflops",
        type=float,
        help="the device's dense bf16/fp16 peak, TFLOP/s, for the fraction-of-peak figure (known GPUs, "
        "e.g. H100 989, A100 312, are looked up by name)",
    )
    parser.add_argument(
        "--pipelines",
        default="ray,ray-fused,ray-whole,local",
        help="pipeline variants to run, comma-separated (default ray,ray-fused,ray-whole,local: the Ray "
        "executor with a pool per model stage, with the models fused in one actor, with the whole graph in each "
        "model actor (the default on CPUs), and the in-process executor)",
    )
    parser.add_argument(
        "--persons",
        type=int,
        help="keep the detector's top N boxes a frame whatever their score, so that a teacher with seeded weights "
        "(which detects no one) sends N persons through the keypoint and lifting stages; the labels are then a "
        "workload, not labels",
    )
    add_overrides(parser, "config overrides for both sides")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orpose.pipeline.bench import PIPELINES, bench

    pipelines = tuple(p.strip() for p in args.pipelines.split(",") if p.strip())
    unknown = [p for p in pipelines if p not in PIPELINES]
    if unknown or not pipelines:
        print(f"labels bench: unknown pipeline variant(s) {unknown} (known: {', '.join(PIPELINES)})", file=sys.stderr)
        return 2
    print(
        "\n".join(
            bench(
                args.config,
                args.frames,
                args.overrides,
                args.weights_dir,
                args.memory_factor,
                args.keep,
                args.peak_tflops,
                pipelines,
                args.persons,
            )
        )
    )
    return 0
