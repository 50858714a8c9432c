"""`labels show`: draw the labels of frames."""

from __future__ import annotations

import argparse

from orpose.pipeline.commands.common import add_out


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "show",
        help="draw one frame's labels: color, depth and 3D side by side",
        description="Write a picture of one frame: the color image with boxes, masks and soft and "
        "hard skeletons (low-confidence joints hollow, their limbs dashed), the depth image with the "
        "labels carried onto it, and the 3D poses.",
    )
    parser.add_argument("path", help="run directory or shard file")
    parser.add_argument("--frame", help="frame id (default: the labelled frame with the most persons)")
    add_out(parser, "PNG file to write")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orpose.label_store.reader import LabelRun
    from orpose.visualize.show import show_frame

    run = LabelRun(args.path)
    frame = args.frame or max((f for f in run if f.labelled), key=len, default=next(iter(run))).frame_id
    print(f"wrote {show_frame(run, frame, args.out)} ({frame})")
    return 0
