"""`labels convert-detectron2`: convert detectron2's X-152 checkpoint for mmdet."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from orpose.teachers.convert_detectron2 import DETECTRON2_X152_CONFIG, convert_detectron2

    meta = convert_detectron2(args.source, args.destination, mm_config=args.mm_config or DETECTRON2_X152_CONFIG)
    print(
        f"{meta['sha256']}  {args.destination}\n  {meta['arrays']} arrays from {args.source} "
        f"(sha256 {meta['source_sha256']}); loaded back strictly into {meta['mm_config']}"
    )
    return 0
