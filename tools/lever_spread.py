"""Each speed lever's labels against a reference run (issue 42): the tolerance each lever needs, measured.

Renders synthetic frames (a held-out seed), labels them once with the reference overrides (default
`precision=fp32`, on this device) and once per lever with `labels run --executor local`, and compares each
lever's labels with the reference's (`orpose.label_store.compare`, persons matched by box IoU). Prints, per
lever, the largest change of every compared quantity (what `Tolerances` would need for the two runs to pass:
`Comparison.needed()`), and whether the lever passes the tolerances `labels bench` and `labels diff
--tolerances-of` use for its device and precision (`orpose.label_store.compare.tolerances_for`). Usage:

    .venv/bin/python tools/lever_spread.py --config tiny --weights-dir data/tiny_teacher --frames 16

Levers are cumulative override sets separated by ';' (the format of `tools/gpu_check.sh`'s PERF_LEVERS). On a
GPU, `--reference "precision=fp32 device=cpu"` measures the GPU's levers against CPU fp32. With seeded weights,
`--persons N` sends N of the detector's top boxes a frame through the later stages (`labels bench --persons`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from orpose.configs.schema import load_teacher_config, parse_overrides
from orpose.label_store.compare import FRAME_CHECKS, PERSON_CHECKS, Tolerances, compare, tolerances_for
from orpose.pipeline.bench import persons_overrides
from orpose.synth.generate import SynthSettings, generate
from orpose.teachers.mm import pick_device

LEVERS = "precision=bf16;precision=bf16 channels_last=true;precision=bf16 channels_last=true detector.masks=merged"
# Every tolerance wide open: the comparison only measures (`needed`), the verdict is tolerances_for's.
WIDE = Tolerances(
    keypoint_px=1e9, confidence=1e9, box_px=1e9, pose3d_mm=1e9, added=10**9, removed=10**9, score=1e9,
    spread_px=1e9, consistency=1e9, mask_iou=0.0, bias_px=1e9, flag_share=1.0,
)  # fmt: skip
SHOWN = (
    "added", "removed", "box_px", "score", "mask_iou", "keypoint_px_median", "keypoint_px_q90", "keypoint_px",
    "confidence", "spread_px", "pose3d_mm_median", "pose3d_mm_q90", "pose3d_mm", "consistency", "bias_px", "flag_share",
)  # fmt: skip


def label(config: str, frames: Path, out: Path, weights_dir: str | None, overrides: list[str]) -> float:
    """`labels run` of `frames` into `out` (a new run); its wall seconds."""
    start = time.perf_counter()
    command = [
        sys.executable, "-m", "orpose.pipeline.cli", "run", "--executor", "local", "--config", config,
        "--frames", str(frames / "manifest.jsonl"), "--out", str(out), "--new-run", "--no-progress",
        *(["--weights-dir", weights_dir] if weights_dir else []), *overrides,
    ]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="tiny", help="teacher (default tiny)")
    parser.add_argument("--weights-dir", help="folder of checkpoints (default the config's)")
    parser.add_argument("--frames", type=int, default=16, help="synthetic frames (default 16)")
    parser.add_argument("--seed", type=int, default=4242, help="the frames' seed (default 4242, held out)")
    parser.add_argument("--reference", default="precision=fp32", help="the reference's overrides")
    parser.add_argument("--levers", default=LEVERS, help=f"';'-separated override sets (default {LEVERS!r})")
    parser.add_argument("--persons", type=int, help="keep the detector's top N boxes a frame (seeded weights)")
    parser.add_argument("--work", default="build/lever_spread", help="work folder (default build/lever_spread)")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("overrides", nargs="*", help="config overrides for every run (e.g. device=cuda)")
    args = parser.parse_args()

    work = Path(args.work)
    frames = work / f"frames-{args.frames}-seed{args.seed}"
    if not (frames / "manifest.jsonl").exists():
        generate(frames, SynthSettings(frames=args.frames, seed=args.seed, cameras=1, calibrated_depth=False))
    common = persons_overrides(args.config, args.persons, args.overrides) if args.persons else list(args.overrides)
    sets = [args.reference, *(lever for lever in args.levers.split(";") if lever.strip())]
    runs, seconds = [], []
    for i, overrides in enumerate(sets):
        out = work / f"run-{i}"
        seconds.append(label(args.config, frames, out, args.weights_dir, [*common, *overrides.split()]))
        runs.append(out)
        print(f"labelled {args.frames} frames with {overrides!r} in {seconds[-1]:.1f} s", file=sys.stderr)

    print(f"teacher {args.config}, {args.frames} synthetic frames (seed {args.seed}), every run with "
          f"{args.overrides or 'no other overrides'}{f', --persons {args.persons}' if args.persons else ''}; "
          f"reference {args.reference!r}")  # fmt: skip
    print("lever | s | persons matched | largest change: " + ", ".join(SHOWN) + " | within its tolerances")
    figures = []
    for overrides, run, wall in zip(sets[1:], runs[1:], seconds[1:]):
        config = load_teacher_config(args.config, parse_overrides([*common, *overrides.split()]))
        device, precision = pick_device(config.device).type, config.precision
        result = compare(runs[0], run, WIDE)
        needed = result.needed()
        # merged masks change the masks by design (docs/teacher.md): the verdict leaves them out
        fields = tuple(f for f in (*FRAME_CHECKS, *PERSON_CHECKS) if f != "mask_rle" or "masks=merged" not in overrides)
        verdict = compare(runs[0], run, tolerances_for(device, precision), fields=fields)
        figures.append(dict(lever=overrides, seconds=wall, matched=result.matched, needed=needed, ok=verdict.ok,
                            device=device, precision=precision))  # fmt: skip
        within = "yes" if verdict.ok else f"NO ({verdict.problems.total} changes)"
        shown = ", ".join(f"{name} {needed[name]:.3g}" for name in SHOWN if name in needed)
        print(f"{overrides} | {wall:.1f} | {result.matched} | {shown} | {device} {precision}: {within}")
        for problem in verdict.problems[:5]:
            print(f"    {problem}")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(config=args.config, frames=args.frames, seed=args.seed,
                                                    reference=args.reference, levers=figures), indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
