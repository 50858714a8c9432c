"""The `labels` command line. Each subcommand parses its arguments and calls one function.

Subcommands register themselves in `COMMANDS` below; `labels --help` lists them all.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Callable

from orpose.errors import USAGE, OrPoseError

__all__ = ["main", "build_parser"]

_EPILOG = """\
examples:
  labels run --config tiny --frames data/sample/manifest.jsonl --out runs/tiny-sample
  labels synth --out data/sample --frames 4 --cameras 2 --seed 0
  labels check-frames data/sample/manifest.jsonl
  labels check-frames data/sample            # an MVOR-style dayN/camM tree
  labels weights --teacher paper             # download the published checkpoints (and convert detectron2's)
  labels weights --teacher paper --info      # parameters and FLOPs of each model against the paper's Table 1
  labels convert-detectron2 model_0039999_e76410.pkl weights/x152.pth   # detectron2 file -> mmdet checkpoint
  labels weights --teacher tiny --init       # seeded tiny-teacher checkpoints (offline)

Run `labels COMMAND --help` for the options of one command. Docs: README.md and docs/.
"""


def _add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """How a frame source is opened (shared by every command that reads one)."""
    parser.add_argument("--calibration", help="calibration file of a manifest (default: calibration.json beside it)")
    parser.add_argument("--annotation", help="MVOR-format annotation file with cameras_info (tree sources)")
    parser.add_argument("--depth-unit-mm", type=float, help="millimetres per depth count, when the MVOR file has none")


def _add_synth(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "synth",
        help="render a synthetic RGB-D operating-room data set with ground truth",
        description="Render deterministic multi-person RGB-D scenes (capsule bodies with faces, furniture, "
        "ceiling cameras) with COCO ground truth: boxes, masks, 2D keypoints with visibility, 3D joints in "
        "camera millimetres. Writes an MVOR-style tree, manifests and calibration files that both frame "
        "sources read. Same arguments give the same bytes.",
    )
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument(
        "--frames", type=int, default=8, help="instants to render; each is seen by every camera (default 8)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--cameras", type=int, default=1, help="ceiling cameras, 1 to 4 (default 1)")
    parser.add_argument("--width", type=int, default=640, help="color width in pixels (default 640)")
    parser.add_argument("--height", type=int, default=480, help="color height in pixels (default 480)")
    parser.add_argument("--max-people", type=int, default=4, help="people per instant, drawn from 1..N (default 4)")
    parser.add_argument("--depth-unit-mm", type=float, default=1.0, help="millimetres per depth count (default 1.0)")
    parser.add_argument("--no-calibrated-depth", action="store_true", help="skip the second, calibrated depth camera")
    parser.add_argument("--no-holes", action="store_true", help="no sensor-like holes in the depth images")
    parser.set_defaults(func=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from orpose.synth.generate import SynthSettings, generate

    settings = SynthSettings(
        frames=args.frames,
        seed=args.seed,
        cameras=args.cameras,
        width=args.width,
        height=args.height,
        max_people=args.max_people,
        calibrated_depth=not args.no_calibrated_depth,
        depth_unit_mm=args.depth_unit_mm,
        holes=not args.no_holes,
    )
    summary = generate(args.out, settings)
    print(
        f"wrote {summary['images']} images ({summary['instants']} instants x {settings.cameras} cameras), "
        f"{summary['persons']} person annotations to {args.out}"
    )
    return 0


def _add_check_frames(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "check-frames",
        help="decode every frame of a source strictly and list the rejected ones with their reasons",
        description="Open a frame source (a .jsonl/.csv manifest, or an MVOR-style dayN/camM tree), decode every "
        "frame with the same strict checks the labelling run uses, and print per-camera counts and each rejected "
        "frame with its reason. Exits 1 when any frame is rejected.",
    )
    parser.add_argument("source", help="manifest file (.jsonl or .csv) or frame-tree folder")
    _add_source_arguments(parser)
    parser.set_defaults(func=_run_check_frames)


def peak_memory_mb() -> float:
    """This process's peak resident memory, MB: Linux's VmHWM, which starts afresh at exec (getrusage's
    ru_maxrss keeps the peak of the process that forked this one: 1.1 GB under pytest), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_check_frames(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from orpose.frames.errors import FrameError, StageError
    from orpose.frames.sources import open_source

    source = open_source(
        args.source, calibration=args.calibration, annotation=args.annotation, depth_unit_mm=args.depth_unit_mm
    )
    refs = source.refs()
    good: Counter[str] = Counter()
    rejected: list[FrameError] = []
    for ref in tqdm(refs, desc="decoding", unit="frame"):
        try:
            source.load(ref)
            good[ref.camera_id] += 1
        except FrameError as error:
            rejected.append(error)
        except Exception as error:  # an input no check foresaw: this frame is reported, the next ones checked
            rejected.append(StageError(ref.frame_id, ref.color_path, f"{type(error).__name__}: {error}"))
    peak_mb = peak_memory_mb()
    print(
        f"{len(refs)} frames, {len(refs) - len(rejected)} good, {len(rejected)} rejected "
        f"(peak memory of this process {peak_mb:.0f} MB)"
    )
    for camera, count in sorted(good.items()):
        calib = source.calibrations()[camera]
        depth = "registered depth" if calib.registered else ("calibrated depth" if calib.depth else "color only")
        print(f"  {camera}: {count} good frames, {calib.color.width}x{calib.color.height}, {depth}")
    for error in rejected:
        print(f"  rejected {error}")
    return 1 if rejected else 0


def _add_weights(sub: argparse._SubParsersAction) -> None:
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
    parser.add_argument("--weights-dir", help="weights folder (default: the config's weights_dir, 'weights')")
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
    parser.set_defaults(func=_run_weights)


def _add_convert_detectron2(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "convert-detectron2",
        help="convert a detectron2 checkpoint (.pkl) into an mmdet checkpoint for the paper's X-152 cascade",
        description="Rename every array of a detectron2 model file (a pickle with a 'model' dict, as its model zoo "
        "publishes) to the mmdet model built from --mm-config, by the explicit rules in "
        "teachers/convert_detectron2.py (never by shape). Refuses a file with keys that have no place in the model, "
        "shape mismatches or missing keys, naming them. The written file holds {'state_dict', 'meta'} with the "
        "source's sha256, and is loaded back strictly before it is kept. How the result is checked against "
        "detectron2 itself: `make check-detectron2`.",
        epilog="example:\n  labels convert-detectron2 weights/model_0039999_e76410.pkl "
        "weights/cascade-mask-rcnn_x152-32x8d-dconv-gn_fpn_in5k_detectron2-e76410.pth",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", help="detectron2 model file (.pkl)")
    parser.add_argument("destination", help="mmdet checkpoint to write (.pth)")
    parser.add_argument(
        "--mm-config",
        default=None,
        help="mmdet model config (default: the paper's X-152, "
        "configs/teachers/mm/cascade-mask-rcnn_x152-32x8d-dconv-gn_fpn_in5k_detectron2.py)",
    )
    parser.set_defaults(func=_run_convert_detectron2)


def _run_convert_detectron2(args: argparse.Namespace) -> int:
    from orpose.teachers.convert_detectron2 import DETECTRON2_X152_CONFIG, convert_detectron2

    meta = convert_detectron2(args.source, args.destination, mm_config=args.mm_config or DETECTRON2_X152_CONFIG)
    print(
        f"{meta['sha256']}  {args.destination}\n  {meta['arrays']} arrays from {args.source} "
        f"(sha256 {meta['source_sha256']}); loaded back strictly into {meta['mm_config']}"
    )
    return 0


def _run_weights(args: argparse.Namespace) -> int:
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


def _add_run(sub: argparse._SubParsersAction) -> None:
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
    parser.add_argument("--config", default="paper", help="teacher name (configs/teachers/NAME.py) or config file")
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
    _add_source_arguments(parser)
    parser.add_argument("--weights-dir", help="folder of checkpoint files (default: the config's weights_dir)")
    parser.add_argument("--new-run", action="store_true", help="discard what the run directory holds and start again")
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
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, dotted paths")
    parser.set_defaults(func=_run_run)


def _run_run(args: argparse.Namespace) -> int:
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


def _add_graph(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "graph",
        help="print the stage graph a run executes: stages, resources, columns read and written",
        description="Print the stage graph of `labels run` for a teacher config: each stage in order with its kind "
        "(cpu or model), what the Ray executor reserves for it (actors x CPUs/GPUs, from the config's run.* "
        "fields), and the batch columns it reads, writes and drops (checked when the graph is built). Loads no model.",
        epilog="examples:\n  labels graph --config tiny\n"
        "  labels graph --config paper run.fuse_models=true run.gpus_per_actor=1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", default="paper", help="teacher name or config file (default paper)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, dotted paths")
    parser.set_defaults(func=_run_graph)


def _run_graph(args: argparse.Namespace) -> int:
    from orpose.configs.schema import load_teacher_config, parse_overrides
    from orpose.pipeline.run import run_graph
    from orpose.stages.graph import describe_graph

    config = load_teacher_config(args.config, parse_overrides(args.overrides))
    graph = run_graph(config)
    fused = any(spec.parts for spec in graph.stages)
    print(f"stage graph of teacher {config.name}" + (" (model stages fused into one actor)" if fused else ""))
    print("\n".join(describe_graph(graph, config.run)))
    return 0


def _add_export_coco(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "export-coco",
        help="write a run's labels as COCO keypoint results (and an image list)",
        description="Write the labels of a run (or one shard) as a COCO keypoint results file that pycocotools' "
        "loadRes reads, and FILE.images.json with the image list. See docs/label_format.md.",
    )
    parser.add_argument("run", help="run directory or shard file")
    parser.add_argument("-o", "--out", required=True, help="results file to write")
    parser.add_argument("--hard", action="store_true", help="export the hard set (hard skeletons, hard keypoints)")
    parser.add_argument("--image-ids", help="ground-truth COCO file whose image ids to use (matched by frame_id)")
    parser.set_defaults(func=_run_export_coco)


def _run_export_coco(args: argparse.Namespace) -> int:
    from orpose.label_store.export import export_coco

    counts = export_coco(args.run, args.out, "hard" if args.hard else "soft", args.image_ids)
    print(f"wrote {counts['results']} person results for {counts['images']} images to {args.out}")
    return 0


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "inspect",
        help="what a run or shard holds: counts, confidences, rejects, provenance",
        description="Frames, persons, hard/soft counts, per-keypoint confidence quantiles, rejected "
        "frames by reason and the provenance of a run directory or one shard.",
    )
    parser.add_argument("path", help="run directory or shard file")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=_run_inspect)


def _run_inspect(args: argparse.Namespace) -> int:
    import json

    from orpose.label_store.inspection import format_inspection, inspect_labels

    info = inspect_labels(args.path)
    print(json.dumps(info, indent=1) if args.json else format_inspection(info))
    return 0


def _add_verify(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "verify",
        help="check schema, checksums, manifest and plan; exit 1 naming each problem",
        description="Check every shard's schema and per-dataset checksums, the manifest against "
        "the files (sha256), and the plan against the manifest. Exits 1 and names each problem.",
    )
    parser.add_argument("path", help="run directory or shard file")
    parser.set_defaults(func=_run_verify)


def _run_verify(args: argparse.Namespace) -> int:
    from orpose.label_store.inspection import verify_run

    problems = verify_run(args.path)
    for problem in problems:
        print(problem)
    print(f"{args.path}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


def _add_show(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "show",
        help="draw one frame's labels: color, depth and 3D side by side",
        description="Write a picture of one frame: the color image with boxes, masks and soft and "
        "hard skeletons (low-confidence joints hollow, their limbs dashed), the depth image with the "
        "labels carried onto it, and the 3D poses.",
    )
    parser.add_argument("path", help="run directory or shard file")
    parser.add_argument("--frame", help="frame id (default: the labelled frame with the most persons)")
    parser.add_argument("-o", "--out", required=True, help="PNG file to write")
    parser.set_defaults(func=_run_show)


def _run_show(args: argparse.Namespace) -> int:
    from orpose.label_store.reader import LabelRun
    from orpose.visualize.show import show_frame

    run = LabelRun(args.path)
    frame = args.frame or max((f for f in run if f.labelled), key=len, default=next(iter(run))).frame_id
    print(f"wrote {show_frame(run, frame, args.out)} ({frame})")
    return 0


def _add_stats(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "stats",
        help="plots of a whole run: confidences, persons per frame, hard/soft, uncertainty, depth consistency",
        description="Write PNG plots of a run into a folder.",
    )
    parser.add_argument("path", help="run directory or shard file")
    parser.add_argument("-o", "--out", required=True, help="folder for the PNG files")
    parser.set_defaults(func=_run_stats)


def _run_stats(args: argparse.Namespace) -> int:
    from orpose.visualize.stats import write_stats

    for path in write_stats(args.path, args.out):
        print(f"wrote {path}")
    return 0


def _add_diff(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "diff",
        help="compare two runs person by person; exit 1 past the tolerances",
        description="Match persons of two runs (or a run and a reference JSON) by box IoU per "
        "frame and compare every stored field: boxes, scores, masks, keypoints and their spread, "
        "the hard set, the soft, hard and camera-frame 3D poses, the depth-grid labels; NaN must "
        "match NaN in place. Report added and removed persons, displacement quantiles, a consistent "
        "shift, and every change past the tolerances (exit 1 if any).",
    )
    parser.add_argument("a", help="run, shard or reference JSON (the baseline)")
    parser.add_argument("b", help="run, shard or reference JSON (the candidate)")
    parser.add_argument("--keypoint-px", type=float, default=1.0, help="largest keypoint displacement (default 1 px)")
    parser.add_argument("--box-px", type=float, default=1.0, help="largest box corner displacement (default 1 px)")
    parser.add_argument("--confidence", type=float, default=0.02, help="largest confidence change (default 0.02)")
    parser.add_argument(
        "--pose3d-mm",
        type=float,
        default=5.0,
        help="largest 3D joint change of the soft, hard and camera-frame poses (default 5 mm)",
    )
    parser.add_argument("--score", type=float, default=0.02, help="largest detector score change (default 0.02)")
    parser.add_argument(
        "--mask-iou", type=float, default=0.9, help="smallest IoU of a matched person's masks (default 0.9)"
    )
    parser.add_argument(
        "--bias-px",
        type=float,
        default=0.1,
        help="largest mean signed shift of boxes or keypoints over the whole run (default 0.1 px)",
    )
    parser.add_argument("--added", type=int, default=0, help="persons allowed to appear per frame (default 0)")
    parser.add_argument("--removed", type=int, default=0, help="persons allowed to disappear per frame (default 0)")
    parser.add_argument("--min-iou", type=float, default=0.5, help="box IoU that matches two persons (default 0.5)")
    parser.set_defaults(func=_run_diff)


def _run_diff(args: argparse.Namespace) -> int:
    from orpose.label_store.compare import Tolerances, compare

    tolerances = Tolerances(
        keypoint_px=args.keypoint_px,
        confidence=args.confidence,
        box_px=args.box_px,
        pose3d_mm=args.pose3d_mm,
        added=args.added,
        removed=args.removed,
        score=args.score,
        mask_iou=args.mask_iou,
        bias_px=args.bias_px,
    )
    result = compare(args.a, args.b, tolerances, args.min_iou)
    print("\n".join(result.lines()))
    print("within tolerances" if result.ok else f"{len(result.problems)} change(s) past the tolerances")
    return 0 if result.ok else 1


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "evaluate",
        help="box AP, keypoint AP, PCK@0.2, left/right swaps and upper-body MPJPE against ground truth",
        description="Evaluate a run, or any detector's COCO results file, against COCO-style ground "
        "truth (MVOR's file and its quirks included): box AP and AR (AR1, AR10, AR100; AP50, AR1 and "
        "AR10 at IoU 0.5), keypoint AP by OKS, PCK at 0.2 of the ground-truth keypoint extent, PCK@0.2 "
        "in MVOR's own protocol (head, shoulder, hip, elbow, wrist, mean), the fraction of left/right "
        "joint pairs predicted the wrong way round (about 50 percent = the model cannot tell a person's "
        "left from right), and, when the ground truth has 3D (the generator's keypoints_3d or MVOR's "
        "annotations3D), root-relative MPJPE over the 8 upper-body joints and MPJPE in the camera frame. "
        "README 'Labelling MVOR' lists the MVOR figures this reproduces.",
    )
    parser.add_argument("run", nargs="?", help="run directory or shard file")
    parser.add_argument(
        "--results",
        help="COCO results file instead of a run (COCO-17 keypoints, or coco_keypoints beside "
        "MVOR's 10; optional pose3d / pose3d_camera, 17 x 3 Human3.6M mm)",
    )
    parser.add_argument("--gt", required=True, help="ground-truth COCO file")
    parser.add_argument("--hard", action="store_true", help="evaluate the hard label set (default: soft)")
    parser.add_argument("--json", action="store_true", help="print one JSON object with the figures")
    parser.set_defaults(func=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    import json

    from orpose.evaluation.evaluate import evaluate, format_report

    if (args.run is None) == (args.results is None):
        print("labels evaluate: give a run or --results, not both", file=sys.stderr)
        return 2
    figures = evaluate(args.gt, run=args.run, results=args.results, label_set="hard" if args.hard else "soft")
    print(json.dumps(figures) if args.json else format_report(figures))
    return 0


def _add_bench(sub: argparse._SubParsersAction) -> None:
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
    parser.add_argument("--config", default="tiny", help="teacher (default tiny)")
    parser.add_argument("--frames", type=int, default=16, help="N, frames to label (default 16)")
    parser.add_argument("--memory-factor", type=int, default=10, help="memory is also measured at this x N frames")
    parser.add_argument("--weights-dir", help="folder of checkpoints (tiny: seeded ones are made if missing)")
    parser.add_argument("--keep", help="work folder to keep (frames, runs, naive output); default a temporary one")
    parser.add_argument(
        "--peak-tflops",
        type=float,
        help="the device's dense bf16/fp16 peak, TFLOP/s, for the fraction-of-peak figure (known GPUs, "
        "e.g. H100 989, A100 312, are looked up by name)",
    )
    parser.add_argument(
        "--pipelines",
        default="ray,ray-fused,local",
        help="pipeline variants to run, comma-separated (default ray,ray-fused,local: the Ray executor "
        "with a pool per model stage, with the models fused in one actor, and the in-process executor)",
    )
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides for both sides")
    parser.set_defaults(func=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
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
            )
        )
    )
    return 0


def _add_bench_plan(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bench-plan",
        help="what planning a source of N frames costs the driver: time and peak memory, fresh and on resume",
        description="Write a synthetic manifest of N frames (image paths that need not exist), then run "
        "`labels run --plan-only` on it in a process of its own: a fresh plan, then a resume after the first "
        "--committed fraction of the shards were marked committed. Prints wall time and peak resident memory "
        "(process tree) of each, and what starting Python with the driver's imports costs alone.",
        epilog="example:\n  labels bench-plan --frames 10000000 --keep /tmp/plan10m",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--frames", type=int, default=1_000_000, help="frames in the manifest (default 1,000,000)")
    parser.add_argument(
        "--committed", type=float, default=0.9, help="fraction of shards marked committed for the resume (0.9)"
    )
    parser.add_argument("--keep", help="work folder to keep and reuse (the manifest is written once per N)")
    parser.set_defaults(func=_run_bench_plan)


def _run_bench_plan(args: argparse.Namespace) -> int:
    from orpose.pipeline.bench_plan import bench_plan

    print("\n".join(bench_plan(args.frames, args.keep, args.committed)))
    return 0


def _add_report(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "report",
        help="one self-contained HTML page about a run: checks, provenance, counts, rejects, plots, gallery",
        description="Write OUT/index.html, a page that opens in any browser without a server or network "
        "(styles inline, pictures embedded): a summary of checks (can I train on this run?), provenance "
        "(teacher, checkpoints with sha256, thresholds, TTA, code and package versions), frames, persons and "
        "hard/soft counts per day and camera, rejected frames with reasons and details, distributions "
        "(detector score, keypoint confidence and TTA spread per joint, persons per frame, hard share per "
        "joint, depth consistency), the result of `labels verify`, the figures of `labels evaluate` for the "
        "soft and hard sets when --gt is given, and a gallery of the least confident persons, color crop "
        "beside depth crop. Statistics are streamed one shard at a time: memory stays bounded on runs of "
        "any size.",
        epilog="example:\n  labels report runs/tiny-sample --gt data/sample/annotations.json "
        "-o runs/tiny-sample/report",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run", help="run directory or shard file")
    parser.add_argument("-o", "--out", required=True, help="folder for index.html (created)")
    parser.add_argument("--gt", help="COCO-style ground truth (the generator's annotations.json, MVOR's file)")
    parser.add_argument("--gallery", type=int, default=24, help="persons in the gallery (default 24)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar while reading shards")
    parser.set_defaults(func=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from orpose.visualize.report import write_report

    index, timings = write_report(
        args.run, args.out, gt=args.gt, gallery_size=args.gallery, progress=not args.no_progress
    )
    print(
        f"wrote {index} in {timings.total:.1f} s (statistics {timings.statistics:.1f} s, "
        f"verify {timings.verify:.1f} s, evaluation {timings.evaluation:.1f} s, plots {timings.plots:.1f} s, "
        f"gallery {timings.gallery:.1f} s)"
    )
    return 0


def _add_export_rerun(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "export-rerun",
        help="write a run as a Rerun recording (.rrd): images, 2D and 3D skeletons, depth as a point cloud",
        description="Write a Rerun recording of a run: per camera a timeline of the color image with boxes and "
        "soft and hard 2D skeletons (confidence, TTA spread and hard flag as attributes of each keypoint), the "
        "depth image with the labels carried onto it, and, under the color camera's pinhole, the camera-frame 3D "
        "skeletons and the depth as a point cloud (metres). Rejected frames appear in each camera's log. "
        "Needs the optional Rerun SDK (pip install -e '.[rerun]'). Open the file with `rerun run.rrd` "
        "(the viewer ships with the SDK) or drag it into the web viewer.",
        epilog="example:\n  labels export-rerun runs/tiny-sample -o runs/tiny-sample/run.rrd --frames 50\n"
        "  rerun runs/tiny-sample/run.rrd",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run", help="run directory or shard file")
    parser.add_argument("-o", "--out", required=True, help=".rrd file to write")
    parser.add_argument("--frames", type=int, help="the first N frames of each camera (default: all)")
    parser.add_argument(
        "--calibration",
        help="calibration file for the pinholes and point clouds (default: the run's source, from run.json)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run_export_rerun)


def _run_export_rerun(args: argparse.Namespace) -> int:
    from orpose.visualize.rerun_export import export_rerun

    result = export_rerun(args.run, args.out, args.frames, calibration=args.calibration, progress=not args.no_progress)
    for note in result.notes:
        print(f"note: {note}")
    cameras = ", ".join(f"{camera} {n}" for camera, n in sorted(result.frames.items()))
    print(
        f"wrote {result.path}: frames per camera: {cameras}; {result.persons} persons, {result.rejected} rejected "
        f"frames, {result.point_clouds} depth point clouds. Open it with: rerun {result.path}"
    )
    return 0


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_run,
    _add_graph,
    _add_bench,
    _add_bench_plan,
    _add_inspect,
    _add_verify,
    _add_show,
    _add_stats,
    _add_report,
    _add_export_rerun,
    _add_diff,
    _add_evaluate,
    _add_synth,
    _add_check_frames,
    _add_weights,
    _add_convert_detectron2,
    _add_export_coco,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labels",
        description="Pseudo-labels for multi-person 2D/3D human pose from unlabeled RGB-D operating-room frames.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True, dest="command")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """`labels ARGV...`: run the command, return its exit code. The one place errors become exit codes:
    the project's own (`orpose.errors.OrPoseError`) carry theirs; a builtin ValueError or FileNotFoundError
    that reaches here is about what was given (a file, a value) and exits 2. Either is printed on one line,
    without a traceback; anything else is a bug and keeps its traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except OrPoseError as error:
        print(f"labels {args.command}: error: {error}", file=sys.stderr)
        return error.exit_code
    except (ValueError, FileNotFoundError) as error:
        print(f"labels {args.command}: error: {error}", file=sys.stderr)
        return USAGE


if __name__ == "__main__":
    sys.exit(main())
