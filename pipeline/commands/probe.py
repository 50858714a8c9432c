"""`labels probe`: train students on a teacher's labels and on ground truth, score them on held-out scenes."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "probe",
        help="do the labels train good students? the 3D student on ground truth, soft, hard and damaged labels",
        description="Render synthetic train and test scenes (held out by seed), label the train scenes with the "
        "teacher and write their ground truth as a run, then train the 3D student (the teacher's lifter "
        "architecture, seeded) on each label set: ground truth, the soft set, the hard set, damaged copies of the "
        "soft set (3D left/right swapped, 3D scaled x1.25), and untrained; score each on the test scenes' "
        "ground truth (MPJPE), with the teacher itself on the same frames. Prints the table and writes it to "
        "OUT/probe.md and OUT/probe.json; the scenes and runs stay in OUT (a rerun reuses them).",
        epilog="examples:\n  labels probe --out runs/probe\n"
        "  labels probe --out runs/probe-quick --train-frames 8 --test-frames 4 --seeds 0 --iters 200",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, help="work folder: scenes, runs, probe.md, probe.json")
    parser.add_argument("--teacher", default="tiny", help="teacher config (default tiny)")
    parser.add_argument("--train-frames", type=int, default=24, help="train instants (default 24)")
    parser.add_argument("--test-frames", type=int, default=12, help="held-out test instants (default 12)")
    parser.add_argument("--cameras", type=int, default=2, help="cameras per instant (default 2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="students' seeds (default 0 1 2)")
    parser.add_argument("--iters", type=int, default=600, help="training iterations per student (default 600)")
    parser.add_argument("--no-damaged", action="store_true", help="skip the damaged label sets")
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
        iters=args.iters,
        damaged=not args.no_damaged,
    )
    print(format_probe(run_probe(settings, args.out, progress=not args.no_progress)))
    return 0
