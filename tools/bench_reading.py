"""Time and peak memory of every command that reads a run, on runs of different sizes, this tree's code beside an
older commit's (issue 43). Usage:

    .venv/bin/python tools/bench_reading.py /tmp/run10k /tmp/run100k /tmp/run1m [--before /tmp/old-tree]
        [--commands open,inspect,verify,stats,query] [--skip-before-over 200000]

Make the runs with `tools/replicate_run.py` and the older tree with `git archive COMMIT | tar -x -C DIR`. Each
command runs alone in its own process; the figures are its wall-clock seconds and peak resident memory (the
process and its children, from wait4). `--before DIR` runs the same command with DIR's code first on PYTHONPATH
(the older tree's own `labels`, the same installed packages), alternated with this tree's on the same run, so the
two columns are measured side by side.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
QUERY = "SELECT frame_id FROM persons GROUP BY frame_id HAVING count(*) FILTER (WHERE confidence_median < 0.5) >= 3"

# name -> argv after `python`, with {run} and {tmp}; None where the older tree has no such command
COMMANDS = {
    "open": ["-c", "import sys; from orpose import LabelRun; LabelRun(sys.argv[1])", "{run}"],
    "inspect": ["-m", "orpose.pipeline.cli", "inspect", "{run}", "--no-progress"],
    "verify": ["-m", "orpose.pipeline.cli", "verify", "{run}", "--no-progress", "--jobs", "{jobs}"],
    "verify-sample": ["-m", "orpose.pipeline.cli", "verify", "{run}", "--no-progress", "--sample", "100"],
    "stats": ["-m", "orpose.pipeline.cli", "stats", "{run}", "-o", "{tmp}/stats"],  # its bar: to the drained stderr
    "report": ["-m", "orpose.pipeline.cli", "report", "{run}", "-o", "{tmp}/report", "--no-progress"],
    "report-sample": [
        "-m",
        "orpose.pipeline.cli",
        "report",
        "{run}",
        "-o",
        "{tmp}/report",
        "--no-progress",
        "--sample",
        "100",
    ],  # fmt: skip
    "export-coco": ["-m", "orpose.pipeline.cli", "export-coco", "{run}", "-o", "{tmp}/coco.json"],
    "diff": ["-m", "orpose.pipeline.cli", "diff", "{run}", "{run}"],  # a run against itself: every field compared
    "query": ["-m", "orpose.pipeline.cli", "query", "{run}", QUERY, "-o", "{tmp}/query.csv"],
}
NEW_ONLY = {"verify-sample", "report-sample", "query"}  # commands the older tree lacks
NEW_OPTIONS = {"inspect": 1, "verify": 3}  # trailing arguments the older tree's command lacks


def older(name: str, argv: list[str]) -> list[str]:
    """`argv` without the options the older tree's command lacks (--no-progress, --jobs N)."""
    drop = NEW_OPTIONS.get(name, 0)
    return argv[: len(argv) - drop] if drop else argv


def measure(argv: list[str], tree: Path | None) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB of the process or its largest child, exit code) of `python argv`."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = f"{tree}{os.pathsep}{env.get('PYTHONPATH', '')}"
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, *argv], cwd=tree or ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)  # fmt: skip
    stderr = process.stderr.read()  # drained before waiting: a full pipe would block the command
    _, status, usage = os.wait4(process.pid, 0)  # Linux: maxrss of the process and of the children it reaped
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code:
        print(f"  ! {' '.join(argv[:4])}... exited {code}: {stderr.decode()[-400:]}", file=sys.stderr)
    return seconds, usage.ru_maxrss / 1024, code


def frames_of(run: Path) -> int:
    with np.load(run / "index" / "index.npz") as data:
        return len(data["frame_id"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--before", type=Path, help="an older tree to run beside this one")
    parser.add_argument("--commands", default="open,inspect,verify,verify-sample,stats,report-sample,export-coco,query")
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument(
        "--skip-before-over",
        type=int,
        default=200_000,
        help="frames above which the older tree is not run (its time and memory grow with the run)",
    )
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; --jobs {args.jobs}; before: {args.before or '-'}")
    print(f"{'command':14s} {'frames':>9s} {'before s':>9s} {'before MB':>10s} {'after s':>8s} {'after MB':>9s}")
    for run in args.runs:
        frames = frames_of(run)
        for name in args.commands.split(","):
            row = {}
            with tempfile.TemporaryDirectory() as tmp:
                argv = [a.format(run=run, tmp=tmp, jobs=args.jobs) for a in COMMANDS[name]]
                trees = [("after", None)]
                if args.before and name not in NEW_ONLY and frames <= args.skip_before_over:
                    trees.insert(0, ("before", args.before))
                for label, tree in trees:
                    row[label] = measure(older(name, argv) if label == "before" else argv, tree)
                    shutil.rmtree(Path(tmp), ignore_errors=True)
                    Path(tmp).mkdir(exist_ok=True)

            def cell(label: str) -> str:
                if label not in row:
                    return f"{'-':>9s} {'-':>10s}" if label == "before" else f"{'-':>8s} {'-':>9s}"
                seconds, mb, code = row[label]
                flag = "" if code == 0 else "!"
                return (f"{seconds:9.2f} {mb:10.0f}" if label == "before" else f"{seconds:8.2f} {mb:9.0f}") + flag

            print(f"{name:14s} {frames:9d} {cell('before')} {cell('after')}", flush=True)


if __name__ == "__main__":
    main()
