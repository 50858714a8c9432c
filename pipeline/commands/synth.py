"""`labels synth`: synthetic scenes with ground truth."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
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
    parser.add_argument(
        "--as-run",
        metavar="RUN",
        help="also write the ground truth as a run directory RUN (the labels schema, confidence 1, committed like a "
        "teacher's run), so that students trained on ground truth and on pseudo-labels read the same way",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
    if args.as_run:
        from orpose.pipeline.ground_truth import ground_truth_run

        run = ground_truth_run(args.out, args.as_run)
        print(f"wrote the ground truth as a run: {run.frames_labelled} frames, {run.persons} persons in {args.as_run}")
    return 0
