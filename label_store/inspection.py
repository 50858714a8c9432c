"""`labels inspect` and `labels verify`: what a run holds, and whether it is sound."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from orpose.frames.files import sha256_file
from orpose.joints import COCO_KEYPOINTS
from orpose.label_store.plan import PLAN_DIR, PlanError, read_plan
from orpose.label_store.reader import LabelRun
from orpose.label_store.shard import manifest_entries, verify_shard

__all__ = ["inspect_labels", "format_inspection", "verify_run", "verify_index"]


def inspect_labels(path: str | Path) -> dict:
    run = LabelRun(path)
    persons_per_frame, rejected = [], Counter()
    confidences, hard_persons, persons = [], 0, 0
    for labels in run:
        if not labels.labelled:
            rejected[labels.frame["reject_reason"]] += 1
            continue
        persons_per_frame.append(len(labels))
        if len(labels):
            persons += len(labels)
            hard_persons += int(labels.persons["hard_valid"].sum())
            confidences.append(labels.persons["keypoints_2d"][..., 2])
    conf = np.concatenate(confidences) if confidences else np.zeros((0, 17))
    quantiles = {
        name: ([round(float(q), 3) for q in np.quantile(conf[:, j], [0.1, 0.5, 0.9])] if len(conf) else None)
        for j, name in enumerate(COCO_KEYPOINTS)
    }
    provenance = run.provenance() if run.shard_files else {}
    return {
        "path": str(path),
        "shards": len(run.shard_files),
        "frames": len(run),
        "labelled": len(persons_per_frame),
        "rejected": dict(rejected),
        "persons": persons,
        "hard_persons": hard_persons,
        "persons_per_frame_mean": float(np.mean(persons_per_frame)) if persons_per_frame else 0.0,
        "keypoint_confidence_q10_q50_q90": quantiles,
        "provenance": {
            k: provenance.get(k)
            for k in ("config_hash", "code_version", "created", "checkpoints_json", "thresholds_json", "tta_json")
        },
    }


def format_inspection(info: dict) -> str:
    lines = [
        f"{info['path']}: {info['shards']} shards, {info['frames']} frames ({info['labelled']} labelled, "
        f"{sum(info['rejected'].values())} rejected)",
        f"persons: {info['persons']} soft, {info['hard_persons']} hard "
        f"({100 * info['hard_persons'] / max(info['persons'], 1):.0f} %), "
        f"{info['persons_per_frame_mean']:.2f} per frame",
    ]
    lines += [f"  rejected {n} x {reason}" for reason, n in sorted(info["rejected"].items())]
    lines.append("keypoint confidence (q10 / q50 / q90):")
    for name, q in info["keypoint_confidence_q10_q50_q90"].items():
        lines.append(f"  {name:15s} " + ("-" if q is None else " / ".join(f"{v:.3f}" for v in q)))
    prov = info["provenance"]
    lines.append(
        f"provenance: config {str(prov.get('config_hash'))[:12]}, code {prov.get('code_version')}, "
        f"created {prov.get('created')}"
    )
    for name, digest in (prov.get("checkpoints_json") or {}).items():
        lines.append(f"  {name}: sha256 {digest[:16]}...")
    lines.append(f"  thresholds {json.dumps(prov.get('thresholds_json'))}")
    lines.append(f"  TTA {json.dumps(prov.get('tta_json'))}")
    return "\n".join(lines)


def verify_run(path: str | Path) -> list[str]:
    """Schema and checksums of every shard, manifest against files, plan against manifest."""
    path = Path(path)
    if path.is_file():
        return verify_shard(path)
    problems = []
    if not (path / "manifest").is_dir():
        return [f"{path}: no manifest/ folder: not a run directory"]
    entries = manifest_entries(path)
    listed = set()
    for entry in entries:
        shard = path / entry.file
        listed.add(shard.resolve())
        if not shard.exists():
            problems.append(f"{shard}: listed in the manifest but missing")
            continue
        if sha256_file(shard) != entry.sha256:
            problems.append(f"{shard}: sha256 differs from its manifest entry (the file changed after commit)")
        problems += verify_shard(shard)
    for shard in sorted((path / "shards").glob("shard-*.h5")) if (path / "shards").exists() else []:
        if shard.resolve() not in listed:
            problems.append(f"{shard}: not in the manifest (an uncommitted leftover; the next run redoes it)")
    problems += verify_index(path)
    try:
        plan = read_plan(path)
    except PlanError as error:
        return [*problems, str(error)]
    if plan is None:
        problems.append(f"{path}: the plan ({PLAN_DIR}/plan.json) is missing")
        return problems
    by_index = {e.index: e for e in entries}
    for index, frames in plan.frame_ids():
        if index not in by_index:
            problems.append(
                f"{path}: planned shard {index} ({len(frames)} frames) is not committed: run `labels run` again"
            )
        elif list(by_index[index].frame_ids) != frames:
            problems.append(f"{path}: shard {index} holds other frames than planned")
    extra = sorted(set(by_index) - set(range(plan.num_shards)))
    if extra:
        problems.append(f"{path}: shards {extra} are not in the plan")
    return problems


def verify_index(path: str | Path) -> list[str]:
    """The run index (label_store/index.py) against the shards: each shard's part, and the consolidated
    index where there is one, must list the shard's frames in its rows with their status, camera, person
    count and depth. A run written before the index has none to check (`labels index RUN` adds it)."""
    import numpy as np

    from orpose.label_store.index import INDEX_COLUMNS, committed_shard_indices, part_path, shard_index_part
    from orpose.label_store.shard import shard_path

    path = Path(path)
    folder = path / "index"
    if not folder.is_dir():
        return []
    problems, truth = [], {}
    for shard_index in committed_shard_indices(path):
        shard = shard_path(path, shard_index)
        if not shard.exists():
            continue  # reported above
        truth[int(shard_index)] = expected = shard_index_part(shard, int(shard_index))
        part = part_path(path, shard_index)
        if not part.exists():
            problems.append(f"{part}: missing for committed shard {shard_index} (`labels index {path}` rebuilds it)")
            continue
        with np.load(part) as data:
            bad = [name for name in INDEX_COLUMNS if not np.array_equal(data[name], expected[name])]
        if bad:
            problems.append(f"{part}: {', '.join(bad)} differ from {shard.name} (`labels index {path}` rebuilds it)")
    consolidated = folder / "index.npz"
    if consolidated.exists() and truth:
        with np.load(consolidated) as data:
            shards = data["shards"]
            # one that covers other shards is stale (a run resumed since): readers then use the parts
            if np.array_equal(shards, sorted(truth)):
                for name in INDEX_COLUMNS:
                    expected = np.concatenate([truth[k][name] for k in sorted(truth)])
                    if not np.array_equal(data[name], expected):
                        problems.append(f"{consolidated}: column {name!r} differs from the shards")
    return problems
