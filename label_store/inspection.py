"""`labels inspect` and `labels verify`: what a run holds, and whether it is sound."""

from __future__ import annotations

import json
from pathlib import Path

from orpose.frames.files import sha256_file
from orpose.joints import COCO_KEYPOINTS
from orpose.label_store.plan import PLAN_DIR, PlanError, read_plan
from orpose.label_store.reader import LabelRun
from orpose.label_store.schema import STATUS_LABELLED
from orpose.label_store.shard import shard_path, verify_shard

__all__ = ["inspect_labels", "format_inspection", "verify_run", "verify_index"]


EXACT_QUANTILES_UP_TO = 200_000  # persons whose confidences are kept for exact quantiles (13.6 MB); beyond, a histogram
QUANTILES = (0.1, 0.5, 0.9)


def inspect_labels(path: str | Path, per_joint: bool = False, progress: bool = False) -> dict:
    """What a run holds, from its index alone (no shard opened but the first, for its provenance): frames,
    rejects by reason, persons (soft, hard, per frame), the quantiles of the detector's score and of each
    person's mean keypoint confidence, and each joint's share of the hard set. `per_joint` adds each joint's
    confidence quantiles, which only the shards hold: one pass over them with memory bounded whatever the run's
    size (`RunStatistics`), exact up to `EXACT_QUANTILES_UP_TO` persons and read from a histogram beyond (to its
    bin, 0.001)."""
    import numpy as np

    from orpose.label_store.index import load_person_index

    run = LabelRun(path)
    index, persons = run.index, load_person_index(path)
    labelled = index.status == STATUS_LABELLED
    reasons, counts = np.unique(index.reject_reason[~labelled], return_counts=True)
    per_frame, frames = np.unique(index.persons[labelled], return_counts=True)
    hard_persons = int(persons.hard_valid.sum())

    def quantiles(values: np.ndarray) -> list[float] | None:
        return [round(float(q), 3) for q in np.quantile(values, QUANTILES)] if len(values) else None

    share = persons.hard_per_joint() / len(persons) if len(persons) else np.full(17, np.nan)
    provenance = run.provenance() if run.shard_files else {}
    return {
        "path": str(path),
        "shards": len(run.shard_files),
        "frames": len(run),
        "labelled": int(labelled.sum()),
        "rejected": {reason.decode(): int(n) for reason, n in zip(reasons, counts)},
        "persons": len(persons),
        "hard_persons": hard_persons,
        "persons_per_frame_mean": len(persons) / int(labelled.sum()) if labelled.any() else 0.0,
        "persons_per_frame": {int(n): int(f) for n, f in zip(per_frame, frames)},
        "score_q10_q50_q90": quantiles(persons.score),
        "confidence_mean_q10_q50_q90": quantiles(persons.confidence_mean),
        "hard_share_per_joint": {
            name: (round(float(share[j]), 3) if len(persons) else None) for j, name in enumerate(COCO_KEYPOINTS)
        },
        "keypoint_confidence_q10_q50_q90": _per_joint_quantiles(run, progress) if per_joint else None,
        "provenance": {
            k: provenance.get(k)
            for k in ("config_hash", "code_version", "created", "checkpoints_json", "thresholds_json", "tta_json")
        },
    }


def _per_joint_quantiles(run: LabelRun, progress: bool) -> dict[str, list[float] | None]:
    """Each joint's keypoint-confidence quantiles over the labelled persons, in one pass over the shards."""
    import numpy as np
    from tqdm import tqdm

    from orpose.label_store.statistics import RunStatistics

    stats, persons = RunStatistics(), 0
    kept: list[np.ndarray] | None = []
    for shard in tqdm(run.shards(), total=len(run.shard_files), desc="reading shards", unit="shard",
                      disable=not progress):  # fmt: skip
        stats.add(shard, counts=False)  # the histograms only: the counts are the index's
        persons += len(shard.persons["score"])  # rejected frames have no person rows
        if kept is not None:
            labelled = shard.frames["status"][shard.persons["frame_index"]] == 0 if len(shard.persons["score"]) else []
            kept.append(shard.persons["keypoints_2d"][..., 2][labelled])
            if sum(len(k) for k in kept) > EXACT_QUANTILES_UP_TO:
                kept = None
    if kept is not None and persons:
        quantiles = np.quantile(np.concatenate(kept), QUANTILES, axis=0).T
    else:
        quantiles = stats.confidence.quantiles(QUANTILES)
    return {
        name: ([round(float(q), 3) for q in quantiles[j]] if persons else None) for j, name in enumerate(COCO_KEYPOINTS)
    }


def _triple(q: list[float] | None) -> str:
    return "-" if q is None else " / ".join(f"{v:.3f}" for v in q)


def format_inspection(info: dict) -> str:
    lines = [
        f"{info['path']}: {info['shards']} shards, {info['frames']} frames ({info['labelled']} labelled, "
        f"{sum(info['rejected'].values())} rejected)",
        f"persons: {info['persons']} soft, {info['hard_persons']} hard "
        f"({100 * info['hard_persons'] / max(info['persons'], 1):.0f} %), "
        f"{info['persons_per_frame_mean']:.2f} per frame",
        "  frames with N persons: " + ", ".join(f"{n}: {f}" for n, f in info["persons_per_frame"].items()),
    ]
    lines += [f"  rejected {n} x {reason}" for reason, n in sorted(info["rejected"].items())]
    lines.append(f"detector score (q10 / q50 / q90): {_triple(info['score_q10_q50_q90'])}")
    lines.append(
        f"mean keypoint confidence of a person (q10 / q50 / q90): {_triple(info['confidence_mean_q10_q50_q90'])}"
    )
    joints = info["keypoint_confidence_q10_q50_q90"]
    lines.append(
        "per joint: share of persons with it in the hard set"
        + (", keypoint confidence (q10 / q50 / q90)" if joints else " (--per-joint adds confidence quantiles)")
    )
    for name, share in info["hard_share_per_joint"].items():
        line = f"  {name:15s} {'-' if share is None else f'{share:.3f}'}"
        lines.append(line + (f"   {_triple(joints[name])}" if joints else ""))
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


def _differing_columns(
    stored: dict, truth: dict, frames: slice = slice(None), persons: slice = slice(None)
) -> list[str]:
    """Index columns whose stored rows (`frames` of the frame columns, `persons` of the person columns) differ
    from the ones computed from the shard. A column the stored index lacks (written before it existed) is not a
    difference: readers take it from the shard. The person summaries are means of float32: compared to 1e-6, as
    another CPU may round them differently."""
    import numpy as np

    from orpose.label_store.index import INDEX_COLUMNS, PERSON_INDEX_COLUMNS

    bad = []
    for name in INDEX_COLUMNS + PERSON_INDEX_COLUMNS:
        if name not in stored:
            continue
        values = stored[name][persons if name in PERSON_INDEX_COLUMNS else frames]
        expected = truth[name]
        same = (
            np.allclose(values, expected, rtol=0, atol=1e-6, equal_nan=True)
            if expected.dtype.kind == "f" and values.shape == expected.shape
            else np.array_equal(values, expected)
        )
        if not same:
            bad.append(name)
    return bad


def _index_part_problems(path: Path, shard_index: int, shard: Path) -> tuple[list[str], dict]:
    """The shard's own index part (its columns, from the shard) and the problems of its stored part."""
    import numpy as np

    from orpose.label_store.index import part_path, shard_index_part

    truth = shard_index_part(shard, shard_index)
    part = part_path(path, shard_index)
    if not (path / "index").is_dir():
        return [], truth  # a run written before the index: nothing to check (`labels index RUN` adds it)
    if not part.exists():
        return [f"{part}: missing for committed shard {shard_index} (`labels index {path}` rebuilds it)"], truth
    with np.load(part) as data:
        bad = _differing_columns({name: data[name] for name in data.files}, truth)
    if bad:
        return [f"{part}: {', '.join(bad)} differ from {shard.name} (`labels index {path}` rebuilds it)"], truth
    return [], truth


class _ConsolidatedCheck:
    """`index/index.npz`'s rows of each checked shard against the shard's own columns, a shard at a time as its
    columns arrive (memory: the consolidated columns, once). One that covers other shards than the committed ones
    is stale (a run resumed since): readers then use the parts, and nothing is checked."""

    def __init__(self, path: Path, committed):
        import numpy as np

        from orpose.label_store.index import person_offsets

        self.file, self.columns = path / "index" / "index.npz", None
        if not self.file.exists():
            return
        with np.load(self.file) as data:
            if np.array_equal(data["shards"], np.asarray(committed)):
                self.columns = {name: data[name] for name in data.files}  # each read once, not once per shard
        if self.columns is not None:
            self.person_start = person_offsets(self.columns["persons"])

    def problems(self, shard_index: int, truth: dict) -> list[str]:
        import numpy as np

        if self.columns is None:
            return []
        lo, hi = np.searchsorted(self.columns["shard"], [shard_index, shard_index + 1])  # rows in shard order
        persons = slice(int(self.person_start[lo]), int(self.person_start[hi]))
        bad = _differing_columns(self.columns, truth, slice(lo, hi), persons)
        return [f"{self.file}: column {name!r} differs from shard {shard_index}" for name in bad]


def _frames_key(frame_ids) -> bytes:
    """A digest of a shard's frame ids in order: what the plan check compares, kept instead of the ids."""
    import hashlib

    return hashlib.sha256("\n".join(frame_ids).encode()).digest()


def _verify_committed_shard(job: tuple[Path, int]) -> tuple[int, list[str], dict | None, bytes]:
    """One committed shard: file present, sha256 as its manifest entry says, schema and checksums, its index part;
    with its columns (for the consolidated index) and the digest of its frame ids (for the plan)."""
    from orpose.label_store.shard import read_manifest_entry, shard_name

    path, shard_index = job
    entry = read_manifest_entry(path / "manifest" / f"{shard_name(shard_index)}.json")
    key = _frames_key(entry.frame_ids)
    shard = path / entry.file
    if not shard.exists():
        return entry.index, [f"{shard}: listed in the manifest but missing"], None, key
    problems = []
    if sha256_file(shard) != entry.sha256:
        problems.append(f"{shard}: sha256 differs from its manifest entry (the file changed after commit)")
    problems += verify_shard(shard)
    if problems:  # an unreadable shard has no columns to compare the index with
        return entry.index, problems, None, key
    part_problems, truth = _index_part_problems(path, entry.index, shard)
    return entry.index, part_problems, truth, key


def verify_run(
    path: str | Path, sample: int | None = None, jobs: int = 1, seed: int = 0, progress: bool = False
) -> list[str]:
    """Schema and checksums of every shard (or of `sample` shards drawn with `seed`), manifest against files,
    the run index against the shards, plan against manifest; `jobs` processes check shards in parallel. Each
    shard's result is folded in as it arrives: memory is the consolidated index's columns and a digest per shard,
    whatever the run's size."""
    from tqdm import tqdm

    from orpose.label_store.shard import committed_shards
    from orpose.label_store.statistics import sample_shards

    path = Path(path)
    if path.is_file():
        return verify_shard(path)
    problems: list[str] = []
    if not (path / "manifest").is_dir():
        return [f"{path}: no manifest/ folder: not a run directory"]
    committed = committed_shards(path)
    chosen = committed[sample_shards(len(committed), sample, seed)]  # the shards `labels report --sample` reads
    jobs_in = [(path, int(i)) for i in chosen]
    consolidated = _ConsolidatedCheck(path, committed)
    frames_keys: dict[int, bytes] = {}

    def fold(results) -> None:
        for shard_index, shard_problems, truth, key in tqdm(results, total=len(jobs_in), desc="verifying shards",
                                                            unit="shard", disable=not progress):  # fmt: skip
            problems.extend(shard_problems)
            frames_keys[shard_index] = key
            if truth is not None:
                problems.extend(consolidated.problems(shard_index, truth))

    if jobs > 1 and len(jobs_in) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(jobs, len(jobs_in))) as pool:
            fold(pool.map(_verify_committed_shard, jobs_in, chunksize=4))
    else:
        fold(map(_verify_committed_shard, jobs_in))
    listed = {shard_path(path, int(i)).resolve() for i in committed}
    for shard in sorted((path / "shards").glob("shard-*.h5")) if (path / "shards").exists() else []:
        if shard.resolve() not in listed:
            problems.append(f"{shard}: not in the manifest (an uncommitted leftover; the next run redoes it)")
    try:
        plan = read_plan(path)
    except PlanError as error:
        return [*problems, str(error)]
    if plan is None:
        problems.append(f"{path}: the plan ({PLAN_DIR}/plan.json) is missing")
        return problems
    committed_set = {int(i) for i in committed}
    for index, frames in plan.frame_ids():
        if index not in committed_set:
            problems.append(
                f"{path}: planned shard {index} ({len(frames)} frames) is not committed: run `labels run` again"
            )
        elif index in frames_keys and frames_keys[index] != _frames_key(frames):
            problems.append(f"{path}: shard {index} holds other frames than planned")
    extra = sorted(committed_set - set(range(plan.num_shards)))
    if extra:
        problems.append(f"{path}: shards {extra} are not in the plan")
    return problems


def verify_index(path: str | Path) -> list[str]:
    """The run index (label_store/index.py) against the shards: each shard's part, and the consolidated
    index where there is one, must list the shard's frames in its rows with their status, camera, person
    count and depth. A run written before the index has none to check (`labels index RUN` adds it)."""
    from orpose.label_store.index import committed_shard_indices

    path = Path(path)
    if not (path / "index").is_dir():
        return []
    problems: list[str] = []
    committed = committed_shard_indices(path)
    consolidated = _ConsolidatedCheck(path, committed)
    for shard_index in committed:
        shard = shard_path(path, int(shard_index))
        if not shard.exists():
            continue  # verify_run reports it
        part_problems, truth = _index_part_problems(path, int(shard_index), shard)
        problems += part_problems + consolidated.problems(int(shard_index), truth)
    return problems
