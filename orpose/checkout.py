"""The source checkout this package runs from, where there is one.

Some commands use what only a clone of the repository has: its git commit for provenance, the working
directory of `labels bench`'s subprocesses and of the tiny teacher's training (the tiny teacher's
checkpoints ship with the package, `orpose/data`). A wheel install has none of them. This is the one
place that finds the checkout: the `ORPOSE_CHECKOUT` setting when given, else the folder above this
package when it holds the project's `pyproject.toml` (an editable install or the source tree); None
otherwise.
"""

import os
from functools import lru_cache
from pathlib import Path

__all__ = ["source_checkout"]

PROJECT = 'name = "or-pose-labels"'


@lru_cache(maxsize=1)
def source_checkout() -> Path | None:
    setting = os.environ.get("ORPOSE_CHECKOUT")
    if setting:
        return Path(setting).resolve()
    candidate = Path(__file__).resolve().parent.parent
    pyproject = candidate / "pyproject.toml"
    if pyproject.is_file() and PROJECT in pyproject.read_text(encoding="utf-8", errors="replace"):
        return candidate
    return None
