"""The `labels` command line: the parser of every command (`orpose.pipeline.commands`, one module per
command) and `main`, the one place where errors become exit codes."""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

from orpose.errors import USAGE, OrPoseError
from orpose.pipeline.commands import COMMANDS

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labels",
        description="Pseudo-labels for multi-person 2D/3D human pose from unlabeled RGB-D operating-room frames.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True, dest="command")
    for name in COMMANDS:
        import_module(f"orpose.pipeline.commands.{name}").register(sub)
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
