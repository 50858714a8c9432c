"""A run directory's identity and plan: what makes a re-run resume exactly once.

- `run.json`: the labels hash of the resolved teacher config (everything that decides labels),
  the checkpoints' sha256s and the source. A re-run with a different config or different weights
  is refused (the label set would mix) unless a new run is asked for.
- `plan.json`: every frame id of the source assigned to a shard, in source order, `shard_size` at
  a time, written once before any model runs. Shards are committed whole (label_store.shard), so
  a re-run labels exactly the planned shards that have no manifest entry yet.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from configs.schema import TeacherConfig, labels_hash, to_dict
from frames.sources import FrameRef
from label_store.shard import manifest_entries

__all__ = ["RunMismatchError", "RunPlan", "prepare_run_dir", "pending_shards", "write_json_atomic"]

RUN_FORMAT = "or-pose-labels/run"
PLAN_FORMAT = "or-pose-labels/plan"


class RunMismatchError(RuntimeError):
    """The run directory holds labels made with another config, other weights or another source."""


@dataclass(frozen=True)
class RunPlan:
    shard_size: int
    shards: tuple[tuple[str, ...], ...]  # frame ids per shard index

    @property
    def num_frames(self) -> int:
        return sum(len(s) for s in self.shards)


def write_json_atomic(path: Path, data: dict) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(temporary, path)


def _diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    lines = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            lines += _diff(a, b, f"{prefix}{key}.")
        elif a != b:
            lines.append(f"{prefix}{key}: {a!r} in the run, {b!r} now")
    return lines


def _identity(config: TeacherConfig, checkpoints: dict[str, str], source: str) -> dict:
    resolved = to_dict(config)
    for key in ("run", "device", "weights_dir"):
        resolved.pop(key, None)
    return {
        "format": RUN_FORMAT,
        "version": 1,
        "teacher": config.name,
        "labels_hash": labels_hash(config),
        "labels_config": resolved,
        "checkpoints": checkpoints,
        "source": source,
    }


def prepare_run_dir(
    run_dir: str | Path,
    config: TeacherConfig,
    checkpoints: dict[str, str],
    source: str,
    refs: list[FrameRef],
    new_run: bool = False,
) -> RunPlan:
    """Create or re-open a run directory; returns its plan. Changes no byte of a matching run."""
    run_dir = Path(run_dir)
    identity = _identity(config, checkpoints, source)
    run_file, plan_file = run_dir / "run.json", run_dir / "plan.json"
    if run_file.exists() and new_run:
        for part in ("shards", "manifest"):
            shutil.rmtree(run_dir / part, ignore_errors=True)
        run_file.unlink()
        plan_file.unlink(missing_ok=True)
    if run_file.exists():
        old = json.loads(run_file.read_text())
        differences = []
        if old.get("labels_hash") != identity["labels_hash"]:
            differences += _diff(old.get("labels_config", {}), identity["labels_config"], "config.")
        if old.get("checkpoints") != identity["checkpoints"]:
            differences += _diff(old.get("checkpoints", {}), identity["checkpoints"], "checkpoint ")
        if old.get("source") != identity["source"]:
            differences.append(f"source: {old.get('source')!r} in the run, {source!r} now")
        if differences:
            raise RunMismatchError(
                f"{run_dir} holds labels of another teacher setup; labelling on would mix label sets:\n  "
                + "\n  ".join(differences)
                + "\nUse another --out, or --new-run to discard this run and start again."
            )
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_file, {**identity, "created": datetime.now(timezone.utc).isoformat(timespec="seconds")})

    if plan_file.exists():
        data = json.loads(plan_file.read_text())
        plan = RunPlan(data["shard_size"], tuple(tuple(s) for s in data["shards"]))
        known = {r.frame_id for r in refs}
        missing = [f for shard in plan.shards for f in shard if f not in known]
        if missing:
            raise RunMismatchError(
                f"{plan_file}: {len(missing)} planned frames are no longer in the source "
                f"(first: {missing[0]!r}); use --new-run to plan again"
            )
        return plan
    size = config.run.shard_size
    ids = [r.frame_id for r in refs]
    plan = RunPlan(size, tuple(tuple(ids[i : i + size]) for i in range(0, len(ids), size)))
    write_json_atomic(
        plan_file,
        {
            "format": PLAN_FORMAT,
            "version": 1,
            "shard_size": size,
            "num_frames": len(ids),
            "shards": [list(s) for s in plan.shards],
        },
    )
    return plan


def pending_shards(run_dir: str | Path, plan: RunPlan) -> list[int]:
    """Planned shards without a manifest entry."""
    done = {e.index for e in manifest_entries(run_dir)}
    return [i for i in range(len(plan.shards)) if i not in done]
