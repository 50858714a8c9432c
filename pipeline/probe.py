"""`labels probe`: do the labels train good students? (issue 41)

On synthetic scenes with ground truth (`labels synth`), held out by seed:
1. the train scenes are labelled by the teacher (`run_labels`, in process) and written as a ground-truth run
   (`pipeline.ground_truth`); the test scenes' ground truth is what every student is scored on, and no student
   or label set ever sees them;
2. each student of `--students` is trained on each label set: the ground truth, the teacher's soft set, its hard
   set, damaged copies of the soft set, and once left untrained; each for every seed:
   - `3d`: the teacher's lifter architecture (`training.lifter_student`); damaged: the 3D's left and right joints
     swapped, the 3D scaled by 1.25 (a joint-order bug, a wrong depth or intrinsics scale);
   - `color`, `color-x8`: the top-down HRNetV2-W16 of `configs/students/` (`training.keypoint_student`) on color
     at factor 1 and at the low factor (seed 000: down-sampled, brought back); damaged (factor 1): the 2D
     shifted by a fixed offset;
   - `depth`: the same network on depth at the depth factor (seed 002), on the color-to-depth labels; damaged:
     the depth keypoints scaled about the image centre (a wrong intrinsics scale);
3. scores on the test scenes: MPJPE (upper body, hips-centred as `labels evaluate`, and all 17 joints
   root-relative) of the 3D student lifting the ground-truth 2D; keypoint AP, AP50, AR (OKS) and PCK@0.2 per joint
   group of the 2D students, with ground-truth boxes; the teacher itself on the same frames (its keypoint stage
   with its test-time augmentation and the same boxes, at each factor; its whole pipeline for 3D), and its
   labels of the train frames;
4. recovery = (student - untrained) / (ground-truth student - untrained) on the main figure (upper-body MPJPE,
   keypoint AP): 1 is as good as ground truth, 0 no better than untrained.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from orpose.configs.schema import CONFIG_DIR, load_teacher_config
from orpose.evaluation.evaluate import evaluate
from orpose.frames.sources import ManifestSource
from orpose.pipeline.ground_truth import ground_truth_run
from orpose.pipeline.run import run_labels

__all__ = ["ProbeSettings", "run_probe", "format_probe", "DAMAGES", "STUDENTS"]

# Human3.6M-17 left/right pairs: hips, knees, ankles, shoulders, elbows, wrists
_H36M_LEFT_RIGHT = ((4, 1), (5, 2), (6, 3), (11, 14), (12, 15), (13, 16))

SHIFT_PX = 8.0  # the damaged 2D set: every keypoint moved by (8, 8) pixels
DEPTH_SCALE = 1.1  # the damaged depth set: depth keypoints scaled by 1.1 about the image centre


def _swap_left_right(pairs):
    from orpose.training.lifter_student import LiftingPairs

    order = np.arange(17)
    for left, right in _H36M_LEFT_RIGHT:
        order[left], order[right] = right, left
    return LiftingPairs(pairs.keypoints, pairs.boxes, pairs.targets[:, order])


def _scale_3d(pairs):
    from orpose.training.lifter_student import LiftingPairs

    return LiftingPairs(pairs.keypoints, pairs.boxes, pairs.targets * 1.25)


def _shift_2d(frame):
    from dataclasses import replace

    return replace(frame, keypoints=frame.keypoints + SHIFT_PX)


def _scale_about_centre(frame):
    from dataclasses import replace

    height, width = frame.image.shape[:2]
    centre = np.array([(width - 1) / 2, (height - 1) / 2])
    return replace(frame, keypoints=(frame.keypoints - centre) * DEPTH_SCALE + centre)


# The damaged copies of the soft set, per student
DAMAGES: dict[str, dict[str, Callable]] = {
    "3d": {"3D left/right swapped": _swap_left_right, "3D scaled x1.25": _scale_3d},
    "color": {f"2D shifted by ({SHIFT_PX:g}, {SHIFT_PX:g}) px": _shift_2d},
    "color-x8": {},
    "depth": {f"depth keypoints scaled x{DEPTH_SCALE:g}": _scale_about_centre},
}
STUDENTS = tuple(DAMAGES)
_GROUPS = {
    "head": ("nose", "left_eye", "right_eye", "left_ear", "right_ear"),
    "shoulders": ("left_shoulder", "right_shoulder"),
    "elbows": ("left_elbow", "right_elbow"),
    "wrists": ("left_wrist", "right_wrist"),
    "hips": ("left_hip", "right_hip"),
    "knees": ("left_knee", "right_knee"),
    "ankles": ("left_ankle", "right_ankle"),
}


@dataclass(frozen=True)
class ProbeSettings:
    teacher: str = "tiny"
    train_frames: int = 24  # instants of the train scenes, each seen by every camera
    test_frames: int = 12
    cameras: int = 2
    seeds: tuple[int, ...] = (0, 1, 2)  # the students' seeds
    students: tuple[str, ...] = STUDENTS
    iters: int = 600  # training iterations of each 3D student
    keypoint_iters: int = 300  # training iterations of each 2D student (batch 16)
    low_factor: float = 8.0  # the `color-x8` student's down-sampling factor
    depth_factor: float = 8.0  # the depth student's (seed 002: 8 or 10)
    train_scene_seed: int = 1000  # the scenes' seeds: the test scenes are never the train scenes
    test_scene_seed: int = 2000
    damaged: bool = True  # also train on the damaged copies of the soft set
    run: str | None = None  # probe this run's labels (made elsewhere) instead of labelling synthetic train scenes
    test: str | None = None  # the held-out test frames: a `labels synth` folder (default: made from test_scene_seed)

    def __post_init__(self) -> None:
        if self.train_scene_seed == self.test_scene_seed:
            raise ValueError("the test scenes must be held out: give them another seed than the train scenes")
        if min(self.train_frames, self.test_frames, self.iters, self.keypoint_iters) < 1 or not self.seeds:
            raise ValueError("train_frames, test_frames, iters, keypoint_iters and seeds must be positive")
        unknown = set(self.students) - set(STUDENTS)
        if unknown or not self.students:
            raise ValueError(
                f"students must be among {', '.join(STUDENTS)}, got {', '.join(sorted(unknown)) or 'none'}"
            )
        if self.low_factor < 1 or self.depth_factor < 1:
            raise ValueError("factors must be >= 1")


@dataclass
class ProbeResult:
    settings: dict
    # per student: "metric" (its main figure), "rows" (one per label set: means and spreads over the seeds),
    # "teacher" (the teacher on the same test frames), "persons" (per label set, and "test")
    students: dict = field(default_factory=dict)
    teacher: dict = field(default_factory=dict)  # the teacher's whole pipeline on the test frames, its train labels
    seconds: float = 0.0


@dataclass(frozen=True)
class ProbeData:
    """Where the probe reads: the run whose labels are probed, the train frames' ground truth (a run; None for a
    run made elsewhere), the test frames (a `labels synth` folder), their ground truth as a run, and the
    teacher's labels of them."""

    train_labels: Path
    train_truth: Path | None
    train_annotations: Path | None
    test_frames: Path
    test_truth: Path
    test_teacher: Path


def _prepare(work: Path, settings: ProbeSettings, progress: bool) -> ProbeData:
    """The scenes and runs of the probe in `work`, made where missing: synthetic train and test scenes, their
    ground truth as runs, the teacher's labels of both; with `settings.run` the train labels are that run, with
    `settings.test` the test frames are that folder."""
    from orpose.synth.generate import SynthSettings, generate

    teacher = load_teacher_config(settings.teacher, {"device": "cpu"})
    splits = {"test": (Path(settings.test) if settings.test else work / "test", settings.test_frames,
                       settings.test_scene_seed)}  # fmt: skip
    if settings.run is None:
        splits["train"] = (work / "train", settings.train_frames, settings.train_scene_seed)
    for split, (folder, frames, seed) in splits.items():
        if not (folder / "annotations.json").exists():
            if split == "test" and settings.test:
                raise FileNotFoundError(f"{folder}: no annotations.json (--test takes a `labels synth` folder)")
            generate(folder, SynthSettings(frames=frames, seed=seed, cameras=settings.cameras), progress=False)
        ground_truth_run(folder, work / f"{split}-ground-truth")
        manifest = folder / "manifest.jsonl"
        run_labels(
            teacher, ManifestSource(manifest), str(manifest), work / f"{split}-teacher", progress=progress,
            executor="local",
        )  # fmt: skip
    if settings.run is not None and not (Path(settings.run) / "run.json").exists():
        raise FileNotFoundError(f"{settings.run}: not a run (no run.json)")
    own = settings.run is None
    return ProbeData(
        train_labels=work / "train-teacher" if own else Path(settings.run),
        train_truth=work / "train-ground-truth" if own else None,
        train_annotations=work / "train" / "annotations.json" if own else None,
        test_frames=splits["test"][0],
        test_truth=work / "test-ground-truth",
        test_teacher=work / "test-teacher",
    )


def _mean_sd(values: list[float]) -> dict:
    return {"mean": float(np.mean(values)), "sd": float(np.std(values)), "values": [float(v) for v in values]}


def _recovery(value: float, untrained: float, truth: float | None) -> float | None:
    return float((value - untrained) / (truth - untrained)) if truth is not None and truth != untrained else None


def _mean_of(scores: dict[str, list[dict]], name: str, key: str) -> float | None:
    return float(np.mean([s[key] for s in scores[name]])) if scores.get(name) else None


# --- the 3D student


def _probe_3d(data: ProbeData, settings: ProbeSettings, bar) -> dict:
    from orpose.training.lifter_student import mpjpe_mm, pairs_from_run, train_lifter_student

    spec = load_teacher_config(settings.teacher).lifter
    test = pairs_from_run(data.test_truth)
    label_sets: dict = {"untrained": None}
    if data.train_truth is not None:
        label_sets["ground truth"] = pairs_from_run(data.train_truth)
    label_sets["soft"] = pairs_from_run(data.train_labels, "soft")
    label_sets["hard"] = pairs_from_run(data.train_labels, "hard")
    if settings.damaged:
        for name, damage in DAMAGES["3d"].items():
            label_sets[f"soft, {name}"] = pairs_from_run(data.train_labels, "soft", damage)
    scores: dict[str, list[dict]] = {name: [] for name in label_sets}
    for seed in settings.seeds:
        for name, pairs in label_sets.items():
            bar.set_postfix_str(f"3d, {name}, seed {seed}")
            student = train_lifter_student(spec, pairs, seed, settings.iters)
            scores[name].append(mpjpe_mm(student(test.keypoints, test.boxes), test.targets))
            bar.update()
    untrained = _mean_of(scores, "untrained", "mpjpe_upper_body_mm")
    truth = _mean_of(scores, "ground truth", "mpjpe_upper_body_mm")
    rows = []
    for name, runs in scores.items():
        upper = [s["mpjpe_upper_body_mm"] for s in runs]
        row = {
            "label_set": name,
            "persons": len(label_sets[name]) if label_sets[name] is not None else 0,
            "mpjpe_upper_body_mm": _mean_sd(upper),
            "mpjpe_mm": _mean_sd([s["mpjpe_mm"] for s in runs]),
        }
        if name != "untrained":
            row["recovery"] = _recovery(float(np.mean(upper)), untrained, truth)
        rows.append(row)
    return {"metric": "mpjpe_upper_body_mm", "rows": rows, "persons": {"test": len(test)}}


# --- the 2D students


def _test_set(data: ProbeData, modality: str, factor: float):
    """The test scenes' ground-truth frames at the factor, and their ground truth as a COCO dict on the frames'
    grid (the depth grid for depth: keypoints carried by the ground truth's depth, areas scaled with the grid)."""
    from orpose.evaluation.ground_truth import load_ground_truth
    from orpose.training.keypoint_student import frames_at_factor

    color_truth, _, _ = load_ground_truth(data.test_frames / "annotations.json")
    frame_of = {image["id"]: image for image in color_truth["images"]}
    areas: dict[str, list[float]] = {}
    for annotation in color_truth["annotations"]:
        areas.setdefault(frame_of[annotation["image_id"]]["frame_id"], []).append(float(annotation["area"]))
    sizes = {image["frame_id"]: (image["width"], image["height"]) for image in color_truth["images"]}
    frames = list(frames_at_factor(data.test_truth, modality, factor))
    images, annotations = [], []
    for i, frame in enumerate(frames):
        height, width = frame.image.shape[:2]
        color_w, color_h = sizes[frame.frame_id]
        if len(areas.get(frame.frame_id, [])) != len(frame.boxes):
            raise ValueError(f"{data.test_truth}: frame {frame.frame_id}: its persons and annotations.json disagree")
        images.append({"id": i, "frame_id": frame.frame_id, "width": width, "height": height})
        for box, points, weights, area in zip(frame.boxes, frame.keypoints, frame.weights, areas[frame.frame_id]):
            seen = weights > 0
            x1, y1, x2, y2 = (float(v) for v in box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i,
                    "category_id": 1,
                    "iscrowd": 0,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": area * (width / color_w) * (height / color_h),
                    "keypoints": np.concatenate([points, 2.0 * seen[:, None]], axis=1).ravel().tolist(),
                    "num_keypoints": int(seen.sum()),
                }
            )
    return frames, {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}


def _score_2d(predict, frames, truth: dict) -> dict:
    """Keypoint AP / AP50 / AR and PCK@0.2 per joint group of `predict` on the frames' ground-truth boxes."""
    from orpose.evaluation.metrics import keypoint_ap, pck

    predictions = []
    for i, (frame, out) in enumerate(zip(frames, predict([f.image for f in frames], [f.boxes for f in frames]))):
        for box, keypoints in zip(frame.boxes, out.keypoints):
            x1, y1, x2, y2 = (float(v) for v in box)
            predictions.append(
                {"image_id": i, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(keypoints[:, 2].mean()),
                 "keypoints": keypoints.astype(np.float64)}
            )  # fmt: skip
    ap = keypoint_ap(truth, predictions, "coco17")
    correct = pck(truth, predictions, "coco17")
    groups = {}
    for group, names in _GROUPS.items():
        values = [correct["per_joint"][n] for n in names if correct["per_joint"][n] is not None]
        groups[group] = float(np.mean(values)) if values else None
    return {"AP": ap["AP"], "AP50": ap["AP50"], "AR": ap["AR"], "PCK": correct["mean"], "PCK_groups": groups}


def _student_2d(student: str, settings: ProbeSettings) -> tuple[str, float]:
    if student == "depth":
        return "depth", settings.depth_factor
    return "color", settings.low_factor if student == "color-x8" else 1.0


def _probe_2d(student: str, data: ProbeData, work: Path, settings: ProbeSettings, bar) -> dict:
    import torch

    from orpose.teachers.keypoints import TopDownKeypoints
    from orpose.teachers.weights import checkpoint_path
    from orpose.training.keypoint_student import crop_persons, frames_at_factor, train_keypoint_student

    modality, factor = _student_2d(student, settings)
    teacher = load_teacher_config(settings.teacher)
    input_size = (96, 128)  # the student config's (w, h)
    frames, truth = _test_set(data, modality, factor)
    label_sets: dict = {"untrained": None}
    sources: dict = {"ground truth": (data.train_truth, "soft", None)} if data.train_truth is not None else {}
    sources |= {"soft": (data.train_labels, "soft", None), "hard": (data.train_labels, "hard", None)}
    if settings.damaged:
        for name, damage in DAMAGES[student].items():
            sources[f"soft, {name}"] = (data.train_labels, "soft", damage)
    for name, (run, label_set, damage) in sources.items():
        label_sets[name] = crop_persons(frames_at_factor(run, modality, factor, label_set, damage), input_size)
    scores: dict[str, list[dict]] = {name: [] for name in label_sets}
    for seed in settings.seeds:
        for name, crops in label_sets.items():
            bar.set_postfix_str(f"{student}, {name}, seed {seed}")
            checkpoint = work / "students" / student / f"{name.replace(' ', '_').replace(',', '')}-seed{seed}.pth"
            predict = train_keypoint_student(teacher.keypoints, crops, seed, settings.keypoint_iters, checkpoint)
            scores[name].append(_score_2d(predict, frames, truth))
            bar.update()
    result: dict = {"metric": "AP", "modality": modality, "factor": factor, "rows": [], "teacher": {}}
    if modality == "color":  # the teacher's keypoint stage, its TTA, on the same frames and boxes
        weights = checkpoint_path(teacher.weights_dir, teacher.keypoints.checkpoint)
        result["teacher"] = _score_2d(
            TopDownKeypoints(teacher.keypoints, weights, torch.device("cpu"), CONFIG_DIR), frames, truth
        )
    untrained = {k: _mean_of(scores, "untrained", k) for k in ("AP", "PCK")}
    truth_figures = {k: _mean_of(scores, "ground truth", k) for k in ("AP", "PCK")}
    for name, runs in scores.items():
        row: dict = {"label_set": name, "persons": len(label_sets[name]) if label_sets[name] is not None else 0}
        for key in ("AP", "AP50", "AR", "PCK"):
            row[key] = _mean_sd([s[key] for s in runs])
        row["PCK_groups"] = {
            group: (float(np.mean([s["PCK_groups"][group] for s in runs])) if runs[0]["PCK_groups"][group] is not None
                    else None)
            for group in _GROUPS
        }  # fmt: skip
        if name != "untrained":
            row["recovery"] = _recovery(row["AP"]["mean"], untrained["AP"], truth_figures["AP"])
            row["recovery_pck"] = _recovery(row["PCK"]["mean"], untrained["PCK"], truth_figures["PCK"])
        result["rows"].append(row)
    result["persons"] = {"test": len(truth["annotations"])}
    return result


def _jobs(student: str, settings: ProbeSettings) -> int:
    damaged = len(DAMAGES[student]) if settings.damaged else 0
    truth = 1 if settings.run is None else 0
    return (3 + truth + damaged) * len(settings.seeds)


def run_probe(settings: ProbeSettings, work: str | Path, progress: bool = True) -> ProbeResult:
    """Everything of the module docstring; the scenes and runs are kept in `work` (a rerun reuses them)."""
    from tqdm import tqdm

    started = time.perf_counter()
    work = Path(work)
    data = _prepare(work, settings, progress)
    result = ProbeResult(asdict(settings))
    with tqdm(
        total=sum(_jobs(s, settings) for s in settings.students), desc="students", unit="student",
        disable=not progress,
    ) as bar:  # fmt: skip
        for student in settings.students:
            if student == "3d":
                result.students[student] = _probe_3d(data, settings, bar)
            else:
                result.students[student] = _probe_2d(student, data, work, settings, bar)
    test_figures = evaluate(data.test_frames / "annotations.json", run=data.test_teacher)
    result.teacher = {
        "test_mpjpe_upper_body_mm": (test_figures["mpjpe_upper_body_mm"] or {}).get("mean"),
        "test_keypoint_ap": test_figures["keypoints"]["AP"],
    }
    if data.train_annotations is not None:  # the probed labels' own quality
        train_figures = evaluate(data.train_annotations, run=data.train_labels)
        result.teacher |= {
            "train_labels_mpjpe_upper_body_mm": (train_figures["mpjpe_upper_body_mm"] or {}).get("mean"),
            "train_labels_keypoint_ap": train_figures["keypoints"]["AP"],
            "train_labels_pck": train_figures["pck"]["mean"],
        }
    result.seconds = time.perf_counter() - started
    (work / "probe.json").write_text(json.dumps(asdict(result), indent=1) + "\n")
    (work / "probe.md").write_text(format_probe(result) + "\n")
    from orpose.visualize.probe_plot import plot_probe

    plot_probe(asdict(result), work / "probe.png")
    return result


def _figure(value: dict, digits: int = 1) -> str:
    return f"{value['mean']:.{digits}f} ± {value['sd']:.{digits}f}"


def _recovery_cell(row: dict, key: str = "recovery") -> str:
    recovery = row.get(key)
    return "" if recovery is None else f"{recovery:.2f}"


def _format_3d(result: ProbeResult, table: dict) -> list[str]:
    s = result.settings
    lines = [
        f"**3D student** (the {s['teacher']} teacher's lifter architecture, {s['iters']} iterations), lifting the "
        f"ground-truth 2D of {table['persons']['test']} held-out persons. MPJPE in mm; lower is better.",
        "",
        "| label set | persons | MPJPE upper body | MPJPE 17 joints | recovery |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in table["rows"]:
        lines.append(
            f"| {row['label_set']} | {row['persons']} | {_figure(row['mpjpe_upper_body_mm'])} | "
            f"{_figure(row['mpjpe_mm'])} | {_recovery_cell(row)} |"
        )
    t = result.teacher
    lines += [
        "",
        f"The teacher itself (its 2D and 3D, `labels evaluate`): upper-body MPJPE "
        f"{_mm(t.get('test_mpjpe_upper_body_mm'))} on the test frames; its labels of the train frames "
        f"{_mm(t.get('train_labels_mpjpe_upper_body_mm'))}.",
    ]
    return lines


def _format_2d(student: str, result: ProbeResult, table: dict) -> list[str]:
    s = result.settings
    title = {"color": "Color 2D student", "color-x8": "Color 2D student, low resolution", "depth": "Depth 2D student"}
    lines = [
        f"**{title[student]}** (`{student}`: {table['modality']} at factor {table['factor']:g}; HRNetV2-W16 128x96, "
        f"{s['keypoint_iters']} iterations of 16), {table['persons']['test']} held-out persons with their "
        "ground-truth boxes. Keypoint AP (OKS), PCK@0.2 of the person's extent; higher is better.",
        "",
        "| label set | persons | AP | AP50 | AR | PCK@0.2 | head | shoulders | elbows | wrists | hips | knees | "
        "ankles | recovery AP | recovery PCK |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = list(table["rows"])
    if table["teacher"]:
        rows.append({"label_set": f"*the teacher ({s['teacher']}, flip TTA)*", "persons": "", **{
            k: {"mean": table["teacher"][k], "sd": 0.0} for k in ("AP", "AP50", "AR", "PCK")
        }, "PCK_groups": table["teacher"]["PCK_groups"]})  # fmt: skip
    for row in rows:
        groups = " | ".join("" if v is None else f"{v:.2f}" for v in row["PCK_groups"].values())
        figures = " | ".join(_figure(row[k], 3) for k in ("AP", "AP50", "AR", "PCK"))
        lines.append(
            f"| {row['label_set']} | {row['persons']} | {figures} | {groups} | {_recovery_cell(row)} | "
            f"{_recovery_cell(row, 'recovery_pck')} |"
        )
    return lines


def format_probe(result: ProbeResult) -> str:
    """The probe's tables as Markdown."""
    s = result.settings
    lines = [
        (f"Probe of the run {s['run']}'s labels" if s["run"] else
         f"Probe of the {s['teacher']} teacher's labels: {s['train_frames']} train instants")
        + (f", test frames {s['test']}" if s["test"] else
           f" and {s['test_frames']} held-out test instants x {s['cameras']} cameras")
        + f"; students' seeds {', '.join(map(str, s['seeds']))} (mean ± sd over them). "
        "Recovery = (student - untrained) / (ground-truth student - untrained).",
    ]  # fmt: skip
    for student, table in result.students.items():
        lines.append("")
        lines += _format_3d(result, table) if student == "3d" else _format_2d(student, result, table)
    t = result.teacher
    own = (
        f"; its labels of the train frames: keypoint AP {t['train_labels_keypoint_ap']:.3f}, PCK@0.2 "
        f"{t['train_labels_pck']:.3f}"
        if "train_labels_keypoint_ap" in t
        else ""
    )
    lines += [
        "",
        f"The teacher's whole pipeline (its own boxes) on the test frames: keypoint AP {t['test_keypoint_ap']:.3f}"
        f"{own}. Probe time: {result.seconds:.0f} s.",
    ]
    return "\n".join(lines)


def _mm(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} mm"
