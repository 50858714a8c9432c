"""Running the `labels` command as a user does: its own process, from the repository root."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def labels(*args, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """`labels ARGS...` (each argument through str), output captured as text."""
    command = [sys.executable, "-m", "orpose.pipeline.cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=timeout, env=env)
