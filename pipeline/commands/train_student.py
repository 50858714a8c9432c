"""`labels train-student`: train a student on a run's labels with mmengine's Runner."""

from __future__ import annotations

import argparse

from orpose.pipeline.commands.common import add_overrides


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train-student",
        help="train an mmpose student config on a run's labels (mmengine Runner)",
        description="Train a student on the labels: CONFIG is an mmpose config whose train dataset is "
        "OrPoseKeypointDataset (configs/students/ has one that trains on CPU in minutes); --run names the run "
        "it reads. Checkpoints and logs go to --work-dir. Prints the loss at the first and the last logged "
        "iteration. The recipes of the papers' students: docs/students.md.",
    )
    parser.add_argument("config", help="student config (an mmpose config file)")
    parser.add_argument("--run", required=True, help="run directory whose labels to train on")
    parser.add_argument(
        "--work-dir", default="work_dirs/student", help="checkpoints and logs (default work_dirs/student)"
    )
    parser.add_argument("--iters", type=int, help="training iterations (default: the config's)")
    add_overrides(parser, "mmengine config overrides, e.g. train_dataloader.dataset.label_set=hard")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orpose.configs.schema import parse_overrides
    from orpose.training.student import logged_losses, train_student

    checkpoint = train_student(args.config, args.run, args.work_dir, args.iters, parse_overrides(args.overrides))
    losses = logged_losses(args.work_dir)
    if losses:
        (i0, first), (i1, last) = losses[0], losses[-1]
        print(f"loss {first:.5f} at iteration {i0}, {last:.5f} at iteration {i1}")
    print(f"checkpoint: {checkpoint}")
    return 0
