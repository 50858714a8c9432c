"""`labels probe`: train students on a teacher's labels and on ground truth, score them on held-out scenes."""

from __future__ import annotations

import argparse

STUDENTS = ("3d", "color", "color-x8", "depth")  # pipeline.probe.STUDENTS, named here to keep --help light


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "probe",
        help="do the labels train good students? students trained on ground truth, soft, hard and damaged labels",
        description="Render synthetic train and test scenes (held out by seed), label the train scenes with the "
        "teacher and write their ground truth as a run, then train each student on each label set: ground truth, "
        "the soft set, the hard set, damaged copies of the soft set, and untrained. Students: 3d (the teacher's "
        "lifter architecture; damaged: 3D left/right swapped, 3D scaled x1.25), color (the top-down HRNetV2-W16 of "
        "configs/students/ at factor 1; damaged: 2D shifted by 8 px), color-x8 (the same at the low factor, seed "
        "000), depth (the same on depth at the depth factor, seed 002, on the color-to-depth labels; damaged: depth "
        "keypoints scaled x1.1). Each is scored on the test scenes' ground truth (MPJPE for 3D; keypoint AP, AR and "
        "PCK@0.2 per joint group with ground-truth boxes for 2D), beside the teacher on the same frames. Prints the "
        "tables and writes them to OUT/probe.md and OUT/probe.json; the scenes, runs and students' checkpoints "
        "stay in OUT (a rerun reuses the scenes and runs). The defaults take about 29 minutes on 2 CPU cores.",
        epilog="examples:\n  labels probe --out runs/probe\n"
        "  labels probe --out runs/probe-3d --students 3d\n"
        "  labels probe --out runs/probe-quick --train-frames 8 --test-frames 4 --seeds 0 --keypoint-iters 100",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, help="work folder: scenes, runs, probe.md, probe.json")
    parser.add_argument("--teacher", default="tiny", help="teacher config (default tiny)")
    parser.add_argument("--train-frames", type=int, default=24, help="train instants (default 24)")
    parser.add_argument("--test-frames", type=int, default=12, help="held-out test instants (default 12)")
    parser.add_argument("--cameras", type=int, default=2, help="cameras per instant (default 2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="students' seeds (default 0 1 2)")
    parser.add_argument(
        "--students", nargs="+", default=list(STUDENTS), choices=STUDENTS, help=f"(default: {' '.join(STUDENTS)})"
    )
    parser.add_argument("--iters", type=int, default=600, help="training iterations per 3D student (default 600)")
    parser.add_argument(
        "--keypoint-iters", type=int, default=300, help="training iterations (batch 16) per 2D student (default 300)"
    )
    parser.add_argument("--low-factor", type=float, default=8.0, help="color-x8's down-sampling factor (default 8)")
    parser.add_argument("--depth-factor", type=float, default=8.0, help="the depth student's factor (default 8)")
    parser.add_argument("--no-damaged", action="store_true", help="skip the damaged label sets")
    parser.add_argument(
        "--run",
        help="probe this run's labels (made elsewhere, e.g. by `labels run`) instead of labelling train scenes; no "
        "ground-truth student then, so no recovery",
    )
    parser.add_argument(
        "--test", help="held-out test frames: a `labels synth` folder (default: made in OUT from its own seed)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orpose.pipeline.probe import ProbeSettings, format_probe, run_probe

    settings = ProbeSettings(
        teacher=args.teacher,
        train_frames=args.train_frames,
        test_frames=args.test_frames,
        cameras=args.cameras,
        seeds=tuple(args.seeds),
        students=tuple(dict.fromkeys(args.students)),
        iters=args.iters,
        keypoint_iters=args.keypoint_iters,
        low_factor=args.low_factor,
        depth_factor=args.depth_factor,
        damaged=not args.no_damaged,
        run=args.run,
        test=args.test,
    )
    print(format_probe(run_probe(settings, args.out, progress=not args.no_progress)))
    return 0
