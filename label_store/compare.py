"""Comparing two label sets frame by frame: what a teacher upgrade or a CI regression is judged by.

Persons are matched per frame by box IoU (greedy, best pairs first, IoU >= `min_iou`). For
matched persons: keypoint displacement (pixels), confidence change, soft 3D change (mm). Unmatched
persons are added or removed. A label set is a `LabelRun` or a reference JSON written by
`reference_from_run` (the CI regression's reviewed reference).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from joints import COCO_KEYPOINTS
from label_store.reader import LabelRun
from teachers.tta import box_iou

__all__ = ["Tolerances", "Comparison", "compare", "reference_from_run", "load_labels"]


@dataclass(frozen=True)
class Tolerances:
    keypoint_px: float = 1.0  # largest keypoint displacement of a matched person
    confidence: float = 0.02  # largest keypoint confidence change
    box_px: float = 1.0  # largest box corner displacement
    pose3d_mm: float = 5.0  # largest soft-3D joint change
    added: int = 0  # persons allowed to appear
    removed: int = 0  # persons allowed to disappear


@dataclass
class Comparison:
    frames: int = 0
    frames_only_in_a: list = field(default_factory=list)
    frames_only_in_b: list = field(default_factory=list)
    matched: int = 0
    added: int = 0
    removed: int = 0
    keypoint_px: list = field(default_factory=list)  # all matched keypoint displacements
    pose3d_mm: list = field(default_factory=list)
    problems: list = field(default_factory=list)  # readable lines, one per tolerance exceeded

    def quantiles(self, values, qs=(0.5, 0.9, 0.99, 1.0)) -> str:
        if not values:
            return "n/a"
        return ", ".join(f"q{int(q * 100)} {np.quantile(values, q):.3g}" for q in qs)

    def lines(self) -> list[str]:
        out = [f"frames compared: {self.frames} (only in A: {len(self.frames_only_in_a)}, only in B: {len(self.frames_only_in_b)})",
               f"persons: {self.matched} matched, {self.added} added, {self.removed} removed",
               f"keypoint displacement px: {self.quantiles(self.keypoint_px)}",
               f"soft 3D change mm: {self.quantiles(self.pose3d_mm)}"]
        out += [f"  {p}" for p in self.problems[:50]]
        if len(self.problems) > 50:
            out.append(f"  ... {len(self.problems) - 50} more")
        return out

    @property
    def ok(self) -> bool:
        return not self.problems


def _frames_of_run(run: LabelRun) -> dict[str, dict]:
    out = {}
    for labels in run:
        p = labels.persons
        out[labels.frame_id] = {"status": int(labels.frame["status"]), "box": p["box"], "score": p["score"],
                                "keypoints_2d": p["keypoints_2d"], "pose3d_soft": p["pose3d_soft"],
                                "hard_valid": p["hard_valid"]}
    return out


def reference_from_run(run: LabelRun | str, path: str | Path) -> None:
    """Write a run's comparable labels as JSON (rounded: 3 decimals), the reviewed reference format."""
    run = run if isinstance(run, LabelRun) else LabelRun(run)
    frames = {}
    for frame_id, f in _frames_of_run(run).items():
        frames[frame_id] = {k: (np.round(np.asarray(v, dtype=np.float64), 3).tolist() if k != "status" else v)
                            for k, v in f.items()}
    Path(path).write_text(json.dumps({"format": "or-pose-labels/reference", "version": 1, "frames": frames}, indent=0) + "\n")


def load_labels(source) -> dict[str, dict]:
    """A run directory, a shard file, a LabelRun, a reference JSON, or such a dict -> frames to arrays."""
    if isinstance(source, dict):
        return source
    if isinstance(source, LabelRun):
        return _frames_of_run(source)
    path = Path(source)
    if path.suffix == ".json":
        data = json.loads(path.read_text())["frames"]
        return {k: {name: (np.asarray(v, dtype=np.float64) if name != "status" else v) for name, v in f.items()}
                for k, f in data.items()}
    return _frames_of_run(LabelRun(path))


def compare(a, b, tolerances: Tolerances = Tolerances(), min_iou: float = 0.5) -> Comparison:
    """Compare label set A (e.g. the reference) with B (e.g. the new run)."""
    la, lb = load_labels(a), load_labels(b)
    result = Comparison()
    result.frames_only_in_a = sorted(set(la) - set(lb))
    result.frames_only_in_b = sorted(set(lb) - set(la))
    for frame_id in result.frames_only_in_a:
        result.problems.append(f"{frame_id}: in A only")
    for frame_id in result.frames_only_in_b:
        result.problems.append(f"{frame_id}: in B only")
    t = tolerances
    for frame_id in sorted(set(la) & set(lb)):
        fa, fb = la[frame_id], lb[frame_id]
        result.frames += 1
        if fa["status"] != fb["status"]:
            result.problems.append(f"{frame_id}: status {fa['status']} -> {fb['status']}")
        boxes_a = np.asarray(fa["box"], dtype=np.float64).reshape(-1, 4)
        boxes_b = np.asarray(fb["box"], dtype=np.float64).reshape(-1, 4)
        ious = box_iou(boxes_a, boxes_b) if len(boxes_a) and len(boxes_b) else np.zeros((len(boxes_a), len(boxes_b)))
        pairs, used_a, used_b = [], set(), set()
        for flat in np.argsort(-ious, axis=None):
            i, j = divmod(int(flat), max(len(boxes_b), 1))
            if ious.size == 0 or ious[i, j] < min_iou:
                break
            if i not in used_a and j not in used_b:
                pairs.append((i, j))
                used_a.add(i)
                used_b.add(j)
        result.matched += len(pairs)
        result.removed += len(boxes_a) - len(pairs)
        result.added += len(boxes_b) - len(pairs)
        if len(boxes_a) - len(pairs) > t.removed or len(boxes_b) - len(pairs) > t.added:
            result.problems.append(f"{frame_id}: {len(boxes_a)} persons -> {len(boxes_b)} ({len(pairs)} matched)")
        for i, j in pairs:
            ka = np.asarray(fa["keypoints_2d"], dtype=np.float64).reshape(-1, 17, 3)[i]
            kb = np.asarray(fb["keypoints_2d"], dtype=np.float64).reshape(-1, 17, 3)[j]
            move = np.linalg.norm(ka[:, :2] - kb[:, :2], axis=1)
            result.keypoint_px.extend(move.tolist())
            pa = np.asarray(fa["pose3d_soft"], dtype=np.float64).reshape(-1, 17, 3)[i]
            pb = np.asarray(fb["pose3d_soft"], dtype=np.float64).reshape(-1, 17, 3)[j]
            change = np.linalg.norm(pa - pb, axis=1)
            result.pose3d_mm.extend(change.tolist())
            corner = np.abs(boxes_a[i] - boxes_b[j]).max()
            if corner > t.box_px:
                result.problems.append(f"{frame_id} person {i}: box moved {corner:.2f} px (tolerance {t.box_px})")
            worst = int(np.argmax(move))
            if move[worst] > t.keypoint_px:
                result.problems.append(f"{frame_id} person {i} {COCO_KEYPOINTS[worst]}: ({ka[worst, 0]:.1f}, {ka[worst, 1]:.1f})"
                                       f" -> ({kb[worst, 0]:.1f}, {kb[worst, 1]:.1f}), {move[worst]:.2f} px (tolerance {t.keypoint_px})")
            dconf = np.abs(ka[:, 2] - kb[:, 2]).max()
            if dconf > t.confidence:
                result.problems.append(f"{frame_id} person {i}: confidence changed by {dconf:.3g} (tolerance {t.confidence})")
            if np.nanmax(change, initial=0) > t.pose3d_mm:
                result.problems.append(f"{frame_id} person {i}: soft 3D moved {np.nanmax(change):.1f} mm (tolerance {t.pose3d_mm})")
    return result
