"""A run directory's identity and plan: what makes a re-run resume exactly once.

- `run.json`: the labels hash of the resolved teacher config (everything that decides labels),
  the checkpoints' sha256s and the source. A re-run with a different config or different weights
  is refused (the label set would mix) unless a new run is asked for.
- `plan/`: every frame of the source assigned to a shard, in source order, `shard_size` at a time
  (with multi-view fusion: instant by instant, shards of whole instants), written once before any
  model runs, as a stream (`label_store.plan`). Shards are committed whole (label_store.shard), so
  a re-run labels exactly the planned shards that have no manifest entry yet. A re-run checks the
  source against the plan: by its fingerprint (a manifest's sha256), else by listing it again.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from orpose.configs.schema import TeacherConfig, labels_hash, to_dict
from orpose.errors import OrPoseError
from orpose.frames import durable
from orpose.frames.calibration import save_calibration
from orpose.frames.sources import FrameSource
from orpose.label_store.plan import PLAN_DIR, Plan, id_hashes, read_plan, write_plan

__all__ = ["RunMismatchError", "prepare_run_dir", "write_json_atomic"]

RUN_FORMAT = "or-pose-labels/run"


class RunMismatchError(OrPoseError, RuntimeError):
    """The run directory holds labels made with another config, other weights or another source."""


def write_json_atomic(path: Path, data: dict) -> None:
    """A JSON file of the run, durably (frames.durable: it appears whole, and stays after a power cut)."""
    durable.write_durable(path, (json.dumps(data, indent=1) + "\n").encode())


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
    source_description: str,
    source: FrameSource,
    new_run: bool = False,
    progress: bool = False,
) -> Plan:
    """Create or re-open a run directory; returns its plan. Changes no byte of a matching run."""
    run_dir = Path(run_dir)
    identity = _identity(config, checkpoints, source_description)
    run_file = run_dir / "run.json"
    if run_file.exists() and new_run:
        # the commit points first: a discard cut short leaves no entry that trusts a file of the old run
        for part in ("manifest", "shards", "index", PLAN_DIR):
            shutil.rmtree(run_dir / part, ignore_errors=True)
        for name in ("calibration.json", "plan.json"):  # the old source's cameras; a version-1 plan
            (run_dir / name).unlink(missing_ok=True)
        run_file.unlink()
        durable.fsync_directory(run_dir)
    if run_file.exists():
        old = json.loads(run_file.read_text())
        differences = []
        if old.get("labels_hash") != identity["labels_hash"]:
            differences += _diff(old.get("labels_config", {}), identity["labels_config"], "config.")
        if old.get("checkpoints") != identity["checkpoints"]:
            differences += _diff(old.get("checkpoints", {}), identity["checkpoints"], "checkpoint ")
        if old.get("source") != identity["source"]:
            differences.append(f"source: {old.get('source')!r} in the run, {source_description!r} now")
        if differences:
            raise RunMismatchError(
                f"{run_dir} holds labels of another teacher setup; labelling on would mix label sets:\n  "
                + "\n  ".join(differences)
                + "\nUse another --out, or --new-run to discard this run and start again."
            )
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(run_file, {**identity, "created": datetime.now(timezone.utc).isoformat(timespec="seconds")})

    if not (run_dir / "calibration.json").exists():
        # the cameras' calibration beside the labels, so that readers give each item its intrinsics
        # (docs/label_format.md); written once, like run.json
        save_calibration(source.calibrations(), run_dir / "calibration.json")
    if (run_dir / "plan.json").exists():
        raise RunMismatchError(
            f"{run_dir / 'plan.json'}: this run was planned by an older version of the pipeline (one JSON plan); "
            "use --new-run to plan it again"
        )
    fingerprint = source.fingerprint()
    plan = read_plan(run_dir)
    if plan is not None:
        if fingerprint is None or fingerprint != plan.fingerprint:
            _check_planned_frames_listed(plan, source)
        return plan
    return write_plan(
        run_dir, source.iter_ref_batches(), config.run.shard_size, fingerprint, source_description, progress=progress,
        instant_tolerance_s=config.fusion.instant_tolerance_s if config.fusion.enabled else None,
    )  # fmt: skip


def _check_planned_frames_listed(plan: Plan, source: FrameSource) -> None:
    """The source changed since planning (or cannot tell): every planned frame must still be listed.
    Compared by id hashes (8 bytes per frame), so a changed 10M-frame source is checked in bounded memory."""
    listed = np.sort(np.concatenate([id_hashes(batch["frame_id"]) for batch in source.iter_ref_batches()]))
    missing, first = 0, None
    for batch in plan.iter_batches(["frame_id"]):
        ids = batch.column(0).to_pylist()
        absent = ~np.isin(id_hashes(ids), listed)
        if absent.any():
            missing += int(absent.sum())
            first = first or ids[int(np.argmax(absent))]
    if missing:
        raise RunMismatchError(
            f"{plan.folder}: {missing} planned frames are no longer in the source "
            f"(first: {first!r}); use --new-run to plan again"
        )
