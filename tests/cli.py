"""Running the `labels` command as a user does, from the repository root.

In this process (`orpose.pipeline.cli.main(argv)`, output captured) unless the process itself is under
test: commands that start Ray or time themselves (`run`, `bench`, `bench-plan`) and calls with their own
environment (`env=`) run in a subprocess of their own."""

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
OWN_PROCESS = {"run", "bench", "bench-plan"}


def labels(*args, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """`labels ARGS...` (each argument through str), output captured as text."""
    argv = [str(a) for a in args]
    if env is not None or (argv and argv[0] in OWN_PROCESS):
        command = [sys.executable, "-m", "orpose.pipeline.cli", *argv]
        return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=timeout, env=env)
    return labels_in_process(argv)


def labels_in_process(argv: list[str]) -> subprocess.CompletedProcess:
    from orpose.pipeline.cli import main

    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exit_:  # argparse's usage errors and --help
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
    finally:
        os.chdir(cwd)
    return subprocess.CompletedProcess(["labels", *argv], code, out.getvalue(), err.getvalue())
