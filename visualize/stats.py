"""`labels stats`: the figures of a run's statistics (`visualize.run_figures`), written as PNG files into a folder.

The statistics are streamed one shard at a time (`label_store.statistics.collect_statistics`): memory does not
grow with the run (fixed-bin histograms and counters), time is one read of every shard. The same figures are in
`labels report`'s page."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from orpose.label_store.reader import LabelRun  # noqa: E402
from orpose.label_store.statistics import collect_statistics  # noqa: E402
from orpose.visualize.run_figures import run_figures  # noqa: E402

__all__ = ["write_stats"]


def write_stats(
    run: LabelRun | str | Path,
    out_dir: str | Path,
    progress: bool = False,
    sample: int | None = None,
    seed: int = 0,
) -> list[Path]:
    """Write `out_dir/<figure>.png` for every figure of the run (`run_figures`); returns their paths. With `sample`,
    counts and scores from the index, per-joint distributions from `sample` shards (`collect_statistics`)."""
    run = run if isinstance(run, LabelRun) else LabelRun(run)
    thresholds = (run.provenance().get("thresholds_json") or {}) if run.shard_files else {}
    stats = collect_statistics(run, progress=progress, sample=sample, seed=seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, figure, _ in run_figures(
        stats, float(thresholds.get("keypoint_score", 0.35)), thresholds.get("box_score")
    ):
        path = out_dir / f"{name}.png"
        figure.tight_layout()
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    return written
