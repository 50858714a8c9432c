"""`labels run`: label a frame source into a run (the main job)."""

from __future__ import annotations

import argparse
from pathlib import Path

from orpose.errors import OrPoseError
from orpose.pipeline.commands.common import add_config, add_overrides, add_source_arguments, add_weights_dir


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run",
        help="label a frame source with a teacher into a run directory of HDF5 shards (Ray, or in-process)",
        description="Label every frame of a source with a teacher: the stage graph decode -> detect -> "
        "keypoints -> lift -> label sets and depth transfer (`labels graph` prints it) -> shard commit. The Ray "
        "executor runs it on this machine by default, or on the Ray cluster at --address / RAY_ADDRESS; "
        "--executor local runs it in this process, without Ray (small runs, debugging). "
        "Re-running the same command on the same run directory labels "
        "only what is missing (a finished run does no model work). Config values are overridden as KEY=VALUE, e.g. "
        "thresholds.box_score=0.5 run.batch_size=4 device=cpu.",
        epilog="examples:\n  labels run --config tiny --frames data/sample/manifest.jsonl --out runs/tiny-sample\n"
        "  labels run --config paper --frames /data/mvor --annotation /data/mvor/camma_mvor_2018.json "
        "--depth-unit-mm 1 --out runs/mvor --address ray://head:10001 run.detector_actors=8 run.gpus_per_actor=1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config(parser, "paper", "teacher name (configs/teachers/NAME.py) or config file")
    parser.add_argument(
        "--frames",
        default="data/sample/manifest.jsonl",
        help="frame source: manifest (.jsonl/.csv) or an MVOR-style tree (default: the bundled sample)",
    )
    parser.add_argument("--out", help="run directory (default runs/<teacher>-<source name>)")
    parser.add_argument(
        "--address", help="Ray cluster address (default: RAY_ADDRESS, else a local Ray on this machine)"
    )
    parser.add_argument(
        "--executor",
        choices=("ray", "local"),
        default="ray",
        help="ray: actor pools (default; needed for a cluster); local: every stage in this process, "
        "decode overlapped with model work (starts in seconds; same labels)",
    )
    add_source_arguments(parser)
    add_weights_dir(parser, "folder of checkpoint files (default: the config's weights_dir)")
    parser.add_argument("--new-run", action="store_true", help="discard what the run directory holds and start again")
    parser.add_argument(
        "--retry-rejected",
        metavar="REASON",
        action="append",
        default=[],
        help="label again every committed shard holding a frame rejected with this reason tag (e.g. stage_error, "
        "after fixing what made a stage raise; `labels inspect` lists the reasons); repeatable",
    )
    parser.add_argument(
        "--plan-only",
        action="store_true",
        help="write the plan (or check it against the source) and print its counts; loads no model",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (batch logs)")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also show Ray's own console output (its notices, warnings, Ray Data's progress lines, worker output); "
        "by default it goes to Ray's log folder only, which the summary names",
    )
    parser.add_argument("--summary-json", help="also write the run's summary (counts, timings) to this JSON file")
    add_overrides(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orpose.configs.schema import load_teacher_config, parse_overrides
    from orpose.frames.sources import open_source
    from orpose.pipeline.run import RunError, run_labels

    config = load_teacher_config(args.config, parse_overrides(args.overrides))
    source = open_source(
        args.frames, calibration=args.calibration, annotation=args.annotation, depth_unit_mm=args.depth_unit_mm
    )
    frames_path = Path(args.frames).resolve()
    out = args.out or f"runs/{config.name}-{frames_path.parent.name if frames_path.is_file() else frames_path.name}"
    try:
        summary = run_labels(
            config,
            source,
            str(frames_path),
            out,
            address=args.address,
            new_run=args.new_run,
            weights_dir=args.weights_dir,
            progress=not args.no_progress,
            executor=args.executor,
            plan_only=args.plan_only,
            verbose=args.verbose,
            retry_rejected=tuple(args.retry_rejected),
        )
    except ValueError as error:
        if isinstance(error, OrPoseError):
            raise
        # a value the run met inside the work (not the command line's): the run failed, exit 1
        raise RunError(str(error)) from error
    print("\n".join(summary.lines()))
    if args.summary_json:
        Path(args.summary_json).write_text(summary.to_json() + "\n")
    return 0
