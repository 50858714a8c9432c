"""Options that several commands share."""

from __future__ import annotations

import argparse

__all__ = ["add_source_arguments", "add_out", "add_config", "add_overrides", "add_weights_dir"]


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """How a frame source is opened (shared by every command that reads one)."""
    parser.add_argument("--calibration", help="calibration file of a manifest (default: calibration.json beside it)")
    parser.add_argument("--annotation", help="MVOR-format annotation file with cameras_info (tree sources)")
    parser.add_argument("--depth-unit-mm", type=float, help="millimetres per depth count, when the MVOR file has none")


def add_out(parser: argparse.ArgumentParser, what: str) -> None:
    """`-o/--out`, required: `what` the command writes."""
    parser.add_argument("-o", "--out", required=True, help=what)


def add_config(parser: argparse.ArgumentParser, default: str, help: str) -> None:
    """`--config`: a teacher name (configs/teachers/NAME.py) or a config file."""
    parser.add_argument("--config", default=default, help=help)


def add_overrides(parser: argparse.ArgumentParser, help: str = "config overrides, dotted paths") -> None:
    """The trailing `KEY=VALUE` config overrides (checked against the config's fields on load)."""
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=help)


def add_weights_dir(parser: argparse.ArgumentParser, help: str) -> None:
    """`--weights-dir`: the folder of checkpoint files."""
    parser.add_argument("--weights-dir", help=help)
