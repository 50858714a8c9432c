"""`labels check-frames`: check a frame source without labelling it."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from orpose.pipeline.commands.common import add_source_arguments


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "check-frames",
        help="decode every frame of a source strictly and list the rejected ones with their reasons",
        description="Open a frame source (a .jsonl/.csv manifest, or an MVOR-style dayN/camM tree), decode every "
        "frame with the same strict checks the labelling run uses, and print per-camera counts and each rejected "
        "frame with its reason. Exits 1 when any frame is rejected.",
    )
    parser.add_argument("source", help="manifest file (.jsonl or .csv) or frame-tree folder")
    add_source_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
