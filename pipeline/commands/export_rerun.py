"""`labels export-rerun`: a Rerun recording of a run."""

from __future__ import annotations

import argparse

from orpose.pipeline.commands.common import add_out


def register(sub: argparse._SubParsersAction) -> None:
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
    add_out(parser, ".rrd file to write")
    parser.add_argument("--frames", type=int, help="the first N frames of each camera (default: all)")
    parser.add_argument(
        "--calibration",
        help="calibration file for the pinholes and point clouds (default: the run's source, from run.json)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
