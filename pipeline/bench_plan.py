"""`labels bench-plan`: what planning a big source costs the driver, measured.

Writes a synthetic manifest of N frames (`synth.manifest`; image paths that need not exist), then runs,
each in its own process, `labels run --plan-only` on it twice: a fresh plan, and a resume after the
first `--committed` fraction of its shards were marked committed (empty manifest entries: a resume
decides what is pending from the entries' file names). Prints wall time and the peak resident memory
of each process tree, sampled every 0.2 s, beside the cost of starting Python with the driver's imports.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from orpose.label_store.shard import shard_name
from orpose.pipeline.bench import timed_command

__all__ = ["bench_plan"]


def _size_mb(path: Path) -> float:
    files = path.rglob("*") if path.is_dir() else [path]
    return sum(p.stat().st_size for p in files if p.is_file()) / 2**20


def bench_plan(frames: int, keep: str | None = None, committed: float = 0.9) -> list[str]:
    from orpose.configs.schema import load_teacher_config
    from orpose.synth.manifest import write_manifest
    from orpose.teachers.weights import init_seeded_weights, missing_checkpoints

    folder = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="labels-bench-plan-"))
    source = folder / f"manifest-{frames}"
    manifest = source / "manifest.jsonl"
    if not (source / "frames.txt").exists() or (source / "frames.txt").read_text() != str(frames):
        write_manifest(source, frames)
        (source / "frames.txt").write_text(str(frames))
    weights = folder / "weights"
    config = load_teacher_config("tiny")
    if missing_checkpoints(config, weights):
        init_seeded_weights(config, weights)
    run_dir, summary = folder / f"run-{frames}", folder / "summary.json"
    shutil.rmtree(run_dir, ignore_errors=True)
    python = sys.executable
    command = [python, "-m", "orpose.pipeline.cli", "run", "--plan-only", "--config", "tiny", "--frames", str(manifest)]
    command += ["--out", str(run_dir), "--weights-dir", str(weights), "--no-progress", "--summary-json", str(summary)]

    baseline = timed_command([python, "-c", "import pipeline.cli, pipeline.run, label_store.plan, pyarrow.parquet"])
    fresh = timed_command(command)
    planned = json.loads(summary.read_text())
    shards = planned["shards_total"]
    entries = run_dir / "manifest"
    entries.mkdir(parents=True, exist_ok=True)
    marked = int(shards * committed)
    for index in range(marked):
        (entries / f"{shard_name(index)}.json").write_text("{}")
    resume = timed_command(command)
    resumed = json.loads(summary.read_text())
    lines = [
        f"source: {frames:,} frames, manifest {_size_mb(manifest):,.0f} MB (JSON lines)",
        f"Python start with the driver's imports: {baseline['seconds']:.1f} s, {baseline['peak_rss_mb']:,.0f} MB",
        f"plan: {fresh['seconds']:.1f} s, driver peak RSS {fresh['peak_rss_mb']:,.0f} MB; "
        f"{planned['planned_frames']:,} frames in {shards:,} shards, plan on disk "
        f"{_size_mb(run_dir / 'plan'):,.0f} MB in {len(list((run_dir / 'plan').glob('part-*.parquet')))} Parquet parts",
        f"resume with {marked:,} of {shards:,} shards committed: {resume['seconds']:.1f} s, driver peak RSS "
        f"{resume['peak_rss_mb']:,.0f} MB; pending {resumed['pending_frames']:,} frames in "
        f"{resumed['shards_total'] - resumed['shards_done_before']:,} shards",
        f"work folder: {folder}" + ("" if keep else " (temporary: pass --keep to reuse the manifest)"),
    ]
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return lines
