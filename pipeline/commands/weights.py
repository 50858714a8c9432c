"""`labels weights`: fetch, initialise or describe checkpoints."""

from __future__ import annotations

import argparse

from orpose.pipeline.commands.common import add_weights_dir


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "weights",
        help="fetch a teacher's checkpoints (or make the tiny teacher's seeded ones) and list them",
        description="Make sure every checkpoint of a teacher is on disk. Published checkpoints are downloaded into the "
        "weights folder where a network exists and checked against their sha256; without a network the command exits "
        "1 with each file name, its URL and where to put it. --init writes seeded weights instead (the tiny teacher's "
        "offline weights). Checkpoints that do not fit their architecture are refused when a run loads them.",
    )
    parser.add_argument(
        "--teacher", default="paper", help="teacher name (configs/teachers/NAME.py) or config path (default paper)"
    )
    add_weights_dir(parser, "weights folder (default: the config's weights_dir, 'weights')")
    parser.add_argument(
        "--init", action="store_true", help="write seeded initial weights under the config's checkpoint names"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for --init (default 0)")
    parser.add_argument(
        "--if-missing", action="store_true", help="with --init: keep checkpoints that are already there"
    )
    parser.add_argument(
        "--info",
        action="store_true",
        help="print each model's parameters and FLOPs (built from its config; no checkpoint needed; "
        "minutes on a CPU for the paper teacher) against the paper's Table 1, and exit",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orpose.configs.schema import load_teacher_config
    from orpose.frames.files import sha256_file
    from orpose.teachers.weights import checkpoint_path, fetch, init_seeded_weights, missing_checkpoints

    config = load_teacher_config(args.teacher)
    if args.info:
        from orpose.teachers.model_info import teacher_info_lines

        print("\n".join(teacher_info_lines(config)))
        return 0
    weights_dir = args.weights_dir or config.weights_dir
    if args.init and not (args.if_missing and not missing_checkpoints(config, weights_dir)):
        init_seeded_weights(config, weights_dir, seed=args.seed)
    else:
        fetch(config, weights_dir)
    for spec in (config.detector, config.keypoints, config.lifter):
        path = checkpoint_path(weights_dir, spec.checkpoint)
        print(f"{sha256_file(path)}  {path}")
    return 0
