"""`labels probe`: do the labels train good students? (issue 41; this version probes the 3D student.)

On synthetic scenes with ground truth (`labels synth`), held-out by seed:
1. the train scenes are labelled by the teacher (`run_labels`, in process) and written as a ground-truth run
   (`pipeline.ground_truth`); the test scenes' ground truth is what every student is scored on, and no student
   or label set ever sees them;
2. the 3D student (the teacher's lifter architecture, seeded: `training.lifter_student`) is trained on each label
   set: the ground truth, the teacher's soft set, its hard set, and damaged copies of the soft set (left and right
   joints swapped in the 3D, the 3D scaled by 1.25: a joint-order bug, a wrong depth or intrinsics scale), and
   once left untrained; each for every seed;
3. every student lifts the test scenes' ground-truth 2D, scored by MPJPE (upper body, hips-centred, as `labels
   evaluate`; and all 17 joints root-relative); the teacher's own 3D is scored on the same test frames (`labels
   evaluate`), and its labels on the train frames;
4. recovery = (untrained - student) / (untrained - ground-truth student), on the upper-body MPJPE (lower is
   better): 1 is as good as ground truth, 0 no better than untrained.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from orpose.configs.schema import load_teacher_config
from orpose.evaluation.evaluate import evaluate
from orpose.frames.sources import ManifestSource
from orpose.pipeline.ground_truth import ground_truth_run
from orpose.pipeline.run import run_labels

__all__ = ["ProbeSettings", "run_probe", "format_probe", "DAMAGES"]

# Human3.6M-17 left/right pairs: hips, knees, ankles, shoulders, elbows, wrists
_H36M_LEFT_RIGHT = ((4, 1), (5, 2), (6, 3), (11, 14), (12, 15), (13, 16))


def _swap_left_right(pairs):
    from orpose.training.lifter_student import LiftingPairs

    order = np.arange(17)
    for left, right in _H36M_LEFT_RIGHT:
        order[left], order[right] = right, left
    return LiftingPairs(pairs.keypoints, pairs.boxes, pairs.targets[:, order])


def _scale_3d(pairs):
    from orpose.training.lifter_student import LiftingPairs

    return LiftingPairs(pairs.keypoints, pairs.boxes, pairs.targets * 1.25)


DAMAGES: dict[str, Callable] = {"3D left/right swapped": _swap_left_right, "3D scaled x1.25": _scale_3d}


@dataclass(frozen=True)
class ProbeSettings:
    teacher: str = "tiny"
    train_frames: int = 24  # instants of the train scenes, each seen by every camera
    test_frames: int = 12
    cameras: int = 2
    seeds: tuple[int, ...] = (0, 1, 2)  # the students' seeds
    iters: int = 600  # training iterations of each student
    train_scene_seed: int = 1000  # the scenes' seeds: the test scenes are never the train scenes
    test_scene_seed: int = 2000
    damaged: bool = True  # also train on the damaged copies of the soft set

    def __post_init__(self) -> None:
        if self.train_scene_seed == self.test_scene_seed:
            raise ValueError("the test scenes must be held out: give them another seed than the train scenes")
        if self.train_frames < 1 or self.test_frames < 1 or self.iters < 1 or not self.seeds:
            raise ValueError("train_frames, test_frames, iters and seeds must be positive")


@dataclass
class ProbeResult:
    settings: dict
    rows: list[dict] = field(default_factory=list)  # one per label set: means and spreads over the seeds
    teacher: dict = field(default_factory=dict)  # the teacher's own 3D on the test frames, its labels on train
    persons: dict = field(default_factory=dict)
    seconds: float = 0.0


def _scenes(work: Path, settings: ProbeSettings, progress: bool) -> None:
    from orpose.synth.generate import SynthSettings, generate

    teacher = load_teacher_config(settings.teacher, {"device": "cpu"})
    for split, frames, seed in (
        ("train", settings.train_frames, settings.train_scene_seed),
        ("test", settings.test_frames, settings.test_scene_seed),
    ):
        if not (work / split / "annotations.json").exists():
            generate(work / split, SynthSettings(frames=frames, seed=seed, cameras=settings.cameras), progress=False)
        ground_truth_run(work / split, work / f"{split}-ground-truth")
        manifest = work / split / "manifest.jsonl"
        run_labels(
            teacher, ManifestSource(manifest), str(manifest), work / f"{split}-teacher", progress=progress,
            executor="local",
        )  # fmt: skip


def _mean_sd(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "sd": float(np.std(values)), "values": [float(v) for v in values]}


def run_probe(settings: ProbeSettings, work: str | Path, progress: bool = True) -> ProbeResult:
    """Everything of the module docstring; the scenes and runs are kept in `work` (a rerun reuses them)."""
    from tqdm import tqdm

    from orpose.training.lifter_student import mpjpe_mm, pairs_from_run, train_lifter_student

    started = time.perf_counter()
    work = Path(work)
    _scenes(work, settings, progress)
    spec = load_teacher_config(settings.teacher).lifter
    test = pairs_from_run(work / "test-ground-truth")
    label_sets = {
        "untrained": None,
        "ground truth": pairs_from_run(work / "train-ground-truth"),
        "soft": pairs_from_run(work / "train-teacher", "soft"),
        "hard": pairs_from_run(work / "train-teacher", "hard"),
    }
    if settings.damaged:
        for name, damage in DAMAGES.items():
            label_sets[f"soft, {name}"] = pairs_from_run(work / "train-teacher", "soft", damage)
    result = ProbeResult(asdict(settings), persons={k: len(v) for k, v in label_sets.items() if v is not None})
    result.persons["test"] = len(test)
    scores: dict[str, list[dict]] = {name: [] for name in label_sets}
    jobs = [(name, seed) for seed in settings.seeds for name in label_sets]
    for name, seed in tqdm(jobs, desc="students", unit="student", disable=not progress):
        student = train_lifter_student(spec, label_sets[name], seed, settings.iters)
        scores[name].append(mpjpe_mm(student(test.keypoints, test.boxes), test.targets))
    untrained = np.mean([s["mpjpe_upper_body_mm"] for s in scores["untrained"]])
    truth = np.mean([s["mpjpe_upper_body_mm"] for s in scores["ground truth"]])
    for name, runs in scores.items():
        upper = [s["mpjpe_upper_body_mm"] for s in runs]
        row = {
            "label_set": name,
            "persons": result.persons.get(name, 0),
            "mpjpe_upper_body_mm": _mean_sd(upper),
            "mpjpe_mm": _mean_sd([s["mpjpe_mm"] for s in runs]),
        }
        if name != "untrained":
            row["recovery"] = float((untrained - np.mean(upper)) / (untrained - truth)) if untrained != truth else None
        result.rows.append(row)
    test_figures = evaluate(work / "test" / "annotations.json", run=work / "test-teacher")
    train_figures = evaluate(work / "train" / "annotations.json", run=work / "train-teacher")
    result.teacher = {
        "test_mpjpe_upper_body_mm": (test_figures["mpjpe_upper_body_mm"] or {}).get("mean"),
        "test_keypoint_ap": test_figures["keypoints"]["AP"],
        "train_labels_mpjpe_upper_body_mm": (train_figures["mpjpe_upper_body_mm"] or {}).get("mean"),
        "train_labels_keypoint_ap": train_figures["keypoints"]["AP"],
    }
    result.seconds = time.perf_counter() - started
    (work / "probe.json").write_text(json.dumps(asdict(result), indent=1) + "\n")
    (work / "probe.md").write_text(format_probe(result) + "\n")
    return result


def _figure(value: dict) -> str:
    return f"{value['mean']:.1f} ± {value['sd']:.1f}"


def format_probe(result: ProbeResult) -> str:
    """The probe's table as Markdown."""
    s = result.settings
    lines = [
        f"3D student (the {s['teacher']} teacher's lifter architecture, {s['iters']} iterations, seeds "
        f"{', '.join(map(str, s['seeds']))}), trained on {s['train_frames']} instants x {s['cameras']} cameras, "
        f"scored on {result.persons.get('test', 0)} held-out persons ({s['test_frames']} instants) lifting their "
        "ground-truth 2D. MPJPE in mm, mean ± sd over the seeds; lower is better.",
        "",
        "| label set | persons | MPJPE upper body | MPJPE 17 joints | recovery |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in result.rows:
        recovery = row.get("recovery")
        lines.append(
            f"| {row['label_set']} | {row['persons']} | {_figure(row['mpjpe_upper_body_mm'])} | "
            f"{_figure(row['mpjpe_mm'])} | {'' if recovery is None else f'{recovery:.2f}'} |"
        )
    t = result.teacher
    lines += [
        "",
        f"The teacher itself on the test frames (its 2D and 3D, `labels evaluate`): upper-body MPJPE "
        f"{_mm(t.get('test_mpjpe_upper_body_mm'))}, keypoint AP {t.get('test_keypoint_ap', float('nan')):.3f}. "
        f"Its labels on the train frames: upper-body MPJPE {_mm(t.get('train_labels_mpjpe_upper_body_mm'))}, "
        f"keypoint AP {t.get('train_labels_keypoint_ap', float('nan')):.3f}. Probe time: {result.seconds:.0f} s.",
    ]
    return "\n".join(lines)


def _mm(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} mm"
