"""`labels bench`: the pipeline's executors against the naive per-frame loop, side by side in one run.

The naive loop is the script a user would write: per frame, mmdet's `inference_detector` on each
TTA view, the keypoint model one crop at a time, the lifter one person at a time, one h5py write
per array per frame. Same models, checkpoints, TTA, thresholds and merging, so the labels must
agree (checked). On CPU the naive model is built as its mmdet config says (mmcv's RoIAlign, NMS and
deformable convolution); the pipeline's detector may use torchvision's kernels, with the same
numbers (`detector.roi_align`, `.nms`, `.deform_conv`, teachers/kernels.py), and the loop then runs
once more with those so that the report splits the ratio between the two. On a GPU both use the
pipeline's kernels (mmcv's ops are built for CPU only).
The pipeline runs as each variant of `PIPELINES`: the Ray executor with one actor pool per model
stage, the Ray executor with the three models fused into one actor, the Ray executor with the whole
graph in each model actor (the default on CPUs), and the in-process executor.
Each side runs in its own process; peak resident memory is sampled over the whole process tree
(the Ray runs' includes Ray and its workers). Memory is also measured at N and
`memory_factor` x N frames: flat memory means nothing accumulates with the frame count.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from orpose.checkout import source_checkout

__all__ = ["bench", "naive_loop", "teacher_flops", "dense_peak_tflops", "persons_overrides"]

# Dense (no sparsity) tensor-core peaks from the vendors' data sheets, TFLOP/s: (bf16/fp16, TF32). The fraction
# of peak a run reaches is its counted FLOPs per second over the figure of its precision; "fp32" on a GPU is TF32
# for cuDNN's convolutions (torch's default), so its peak is TF32's (the V100 has none: its fp32 peak).
DENSE_PEAK_TFLOPS = (
    ("H100 PCIe", 756.0, 378.0),
    ("H100", 989.4, 494.7),
    ("H200", 989.4, 494.7),
    ("A100", 312.0, 156.0),
    ("L40S", 362.1, 183.0),
    ("A10", 125.0, 62.5),
    ("V100", 125.0, 15.7),
)


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        process = psutil.Process(pid)
        total = process.memory_info().rss
        for child in process.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total
    except psutil.Error:
        return 0


def timed_command(command: list[str]) -> dict:
    """Run a command; its wall time, peak RSS of its process tree, and its output."""
    peak = [0]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=source_checkout()
    )
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(process.pid))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} ... failed:\n{stderr[-3000:]}")
    return {"seconds": time.perf_counter() - started, "peak_rss_mb": peak[0] / 2**20, "stdout": stdout}


@dataclasses.dataclass
class _NaiveTeacher:
    """The three models as a user's script builds them, and mmdet's test pipeline for whole views."""

    config: object
    device: object
    detector: object
    keypoints: object
    lifter: object
    test_pipeline: object


def _naive_teacher(config_name: str, overrides: dict, weights_dir: str | None) -> _NaiveTeacher:
    """Build the models one crop and one pose per forward, from the same config and checkpoints."""
    import orpose.teachers  # first: it puts mmcv's extension in place where mmcv-lite is installed

    orpose.teachers.quiet_optimizer_notice()

    # isort: split
    from mmdet.utils import register_all_modules
    from mmengine.dataset import Compose

    from orpose.configs.schema import CONFIG_DIR, load_teacher_config
    from orpose.teachers.detector import PersonDetector
    from orpose.teachers.keypoints import TopDownKeypoints
    from orpose.teachers.lifter import Lifter
    from orpose.teachers.mm import pick_device
    from orpose.teachers.weights import checkpoint_path

    config = load_teacher_config(config_name, overrides)
    wd = weights_dir or config.weights_dir
    device = pick_device(config.device)
    speed = dict(precision=config.precision, channels_last=config.channels_last)
    detector = PersonDetector(
        config.detector,
        checkpoint_path(wd, config.detector.checkpoint),
        device,
        config.thresholds.box_score,
        CONFIG_DIR,
        **speed,
    )
    keypoints = TopDownKeypoints(
        dataclasses.replace(config.keypoints, crops_per_forward=1),
        checkpoint_path(wd, config.keypoints.checkpoint),
        device,
        CONFIG_DIR,
        **speed,
    )
    lifter = Lifter(
        dataclasses.replace(config.lifter, poses_per_forward=1),
        checkpoint_path(wd, config.lifter.checkpoint),
        device,
        CONFIG_DIR,
        precision=config.precision,
    )
    # The views are made here as in the pipeline; mmdet's own test pipeline must not resize them again.
    register_all_modules(init_default_scope=True)
    test_pipeline = Compose(
        [
            dict(type="mmdet.LoadImageFromNDArray"),
            dict(type="mmdet.Resize", scale_factor=1.0, keep_ratio=True),
            dict(type="mmdet.PackDetInputs"),
        ]
    )
    return _NaiveTeacher(config, device, detector, keypoints, lifter, test_pipeline)


def _naive_detect(teacher: _NaiveTeacher, color_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`inference_detector` on each TTA view, merged as the pipeline merges; (boxes, scores, masks)."""
    from mmdet.apis import inference_detector

    from orpose.teachers.detector import mask_to_frame, render_view
    from orpose.teachers.mm import forward_context
    from orpose.teachers.tta import boxes_from_view, detection_views

    spec, detector = teacher.config.detector, teacher.detector
    h, w = color_bgr.shape[:2]
    views, full_masks = [], []
    for view in detection_views(w, h, spec.scales, spec.max_side, spec.flip):
        with forward_context(teacher.device, teacher.config.precision):  # NMS kernel: chosen when built
            result = inference_detector(
                detector.model, render_view(color_bgr, view), test_pipeline=teacher.test_pipeline
            )
        pred = result.pred_instances
        person = (pred.labels == detector.person_label).cpu().numpy()
        views.append(
            (
                boxes_from_view(pred.bboxes.float().cpu().numpy()[person], view),  # bf16 under CPU autocast
                pred.scores.float().cpu().numpy()[person],
                np.flatnonzero(person),
                view,
                len(views),
                0,
            )
        )
        full_masks.append(pred.masks.cpu().numpy())
    boxes, scores, picks = detector.merge_views(views)
    masks = np.zeros((len(picks), h, w), dtype=bool)
    for k, (view, c, _, row) in enumerate(picks):
        masks[k] = mask_to_frame(full_masks[c][row], view, w, h)
    return boxes, scores, masks


def _naive_lift(teacher: _NaiveTeacher, keypoints_2d: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Soft and hard 3D poses, the lifter called one person at a time."""
    from orpose.stages.label_sets import hard_keypoints

    lifter, thresholds = teacher.lifter, teacher.config.thresholds
    soft = [lifter(keypoints_2d[p : p + 1], boxes[p : p + 1]) for p in range(len(boxes))]
    hard_mask = hard_keypoints(keypoints_2d, thresholds.keypoint_score, thresholds.min_keypoints)[0]
    hard = [lifter(keypoints_2d[p : p + 1], boxes[p : p + 1], hard_mask[p : p + 1]) for p in range(len(boxes))]
    empty = np.zeros((0, 17, 3), np.float32)
    return (np.concatenate(soft) if soft else empty), (np.concatenate(hard) if hard else empty)


def naive_loop(config_name: str, overrides: dict, frames: str, out: str, weights_dir: str | None) -> dict:
    """The per-frame loop; returns its timings. Writes `out` (one HDF5 group per frame)."""
    import h5py

    from orpose.frames.sources import open_source
    from orpose.pipeline.commands.check_frames import peak_memory_mb
    from orpose.pipeline.run import gpu_peak_mb

    started = time.perf_counter()
    teacher = _naive_teacher(config_name, overrides, weights_dir)
    seconds = dict.fromkeys(("decode", "detect", "keypoints", "lift", "write"), 0.0)
    seconds = {"load": time.perf_counter() - started, **seconds}
    source = open_source(frames)
    with h5py.File(out, "w") as store:
        for ref in source.refs():
            t = time.perf_counter()
            frame = source.load(ref)
            seconds["decode"] += time.perf_counter() - t
            t = time.perf_counter()
            boxes, scores, masks = _naive_detect(teacher, frame.color_bgr)
            seconds["detect"] += time.perf_counter() - t
            t = time.perf_counter()
            people = teacher.keypoints([frame.color_bgr], [boxes])[0]
            seconds["keypoints"] += time.perf_counter() - t
            t = time.perf_counter()
            soft, hard = _naive_lift(teacher, people.keypoints, boxes)
            seconds["lift"] += time.perf_counter() - t
            t = time.perf_counter()
            group = store.create_group(ref.frame_id)
            group["box"] = boxes
            group["score"] = scores
            group["mask"] = masks
            group["keypoints_2d"] = people.keypoints
            group["pose3d_soft"] = soft
            group["pose3d_hard"] = hard
            seconds["write"] += time.perf_counter() - t
    return {
        "seconds": seconds,
        "frames": len(source.refs()),
        "peak_rss_mb": peak_memory_mb(),
        "gpu_peak_mb": gpu_peak_mb(),
    }


def dense_peak_tflops(device_name: str, precision: str = "bf16") -> float | None:
    """The dense peak of a GPU for a precision (bf16 and fp16: the half-precision tensor cores; fp32: TF32) from
    its torch device name (e.g. "NVIDIA H100 80GB HBM3"), or None when the name is not in the table (then
    `labels bench --peak-tflops` gives it)."""
    for key, half, tf32 in DENSE_PEAK_TFLOPS:  # most specific first: "H100 PCIe" before "H100"
        if key.lower() in device_name.lower():
            return tf32 if precision == "fp32" else half
    return None


def teacher_flops(config_name: str, overrides: dict, frames: str, weights_dir: str | None, sample: int = 4) -> dict:
    """FLOPs per frame of the batched teacher (what the pipeline's actors run), in all and per model stage: torch's
    flop counter around the first `sample` frames, convolutions and matrix products (2 per multiply-add; RoIAlign,
    NMS and other custom ops are not counted). Also the device's name."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from orpose.configs.schema import load_teacher_config
    from orpose.frames.sources import open_source
    from orpose.pipeline.executors import LocalExecutor
    from orpose.teachers.mm import pick_device

    config = load_teacher_config(config_name, overrides)
    teacher = LocalExecutor.for_teacher(config, weights_dir)
    source = open_source(frames)
    images = [source.load(ref).color_bgr for ref in source.refs()[:sample]]
    per_stage: dict[str, float] = {}

    @contextlib.contextmanager
    def counted(stage: str):
        with FlopCounterMode(display=False) as counter:
            yield
        per_stage[stage] = counter.get_total_flops() / len(images)

    teacher.label_images_by_stage(images, counted)
    device = pick_device(config.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    return {
        "flops_per_frame": sum(per_stage.values()),
        "stage_flops_per_frame": per_stage,
        "frames": len(images),
        "device": name,
    }


NAIVE_FIELDS = ("box", "score", "keypoints_2d", "pose3d_soft")  # what the naive loop's file keeps


def _naive_labels(path: Path) -> dict:
    import h5py

    out = {}
    with h5py.File(path, "r") as store:

        def visit(name, item):
            if isinstance(item, h5py.Group) and "box" in item:
                out[name] = {"persons": {field: item[field][()] for field in NAIVE_FIELDS}}

        store.visititems(visit)
    return out


# Pipeline variants the bench runs beside the naive loop: executor and whether the three models share one actor.
PIPELINES = {
    "ray": ("ray", False),
    "ray-fused": ("ray", True),
    "ray-whole": ("ray", "whole"),
    "local": ("local", False),
}


def _kernels_text(kernels: dict) -> str:
    return ", ".join(f"{field} {kernel}" for field, kernel in kernels.items())


# Boxes of every class a view keeps past the RoI head under --persons (enough for 'person' to be among them).
PERSONS_KEPT_PER_VIEW = 10_000


def persons_overrides(config_name: str, persons: int, overrides: list[str]) -> list[str]:
    """Overrides that make a teacher with seeded weights hand `persons` boxes a frame to the keypoint stage: the
    detector's top boxes kept whatever their score (the RoI head's `score_thr` and the box threshold at 0, its
    `max_per_img` at PERSONS_KEPT_PER_VIEW, `detector.max_persons` = persons). Seeded weights score every box near
    chance (1/81 for the paper's 80 COCO classes, under mmdet's 0.05), so without them no person reaches the
    keypoint and lifting stages, and a bench times the detector alone. The detector still runs its full forward;
    the boxes are not persons, so the labels are a workload, not labels."""
    from orpose.configs.schema import load_teacher_config, parse_overrides

    if persons < 1:
        raise ValueError(f"--persons must be >= 1, got {persons}")
    config = load_teacher_config(config_name, parse_overrides(overrides))
    # and every class's boxes kept past the RoI head (detectron2's 100 a view): seeded weights rank 'person', 1 of
    # the paper's 80 classes, below the top 100, and the paper teacher found no person with --persons
    options = {
        **config.detector.cfg_options,
        "model.test_cfg.rcnn.score_thr": 0.0,
        "model.test_cfg.rcnn.max_per_img": PERSONS_KEPT_PER_VIEW,
    }
    return [
        *overrides,
        "thresholds.box_score=0.0",
        f"detector.max_persons={persons}",
        f"detector.cfg_options={options!r}",
    ]


def bench(
    config_name: str,
    frames: int,
    overrides: list[str],
    weights_dir: str | None = None,
    memory_factor: int = 10,
    keep: str | None = None,
    peak_tflops: float | None = None,
    pipelines: tuple[str, ...] = tuple(PIPELINES),
    persons: int | None = None,
) -> list[str]:
    """Run the naive loop and each pipeline variant (`PIPELINES`), each in its own process; return the report lines.
    `persons`: the seeded detector's top boxes kept whatever their score (`persons_overrides`)."""
    if persons is not None:
        overrides = persons_overrides(config_name, persons, overrides)
    config, common, folder, small, large = _bench_inputs(
        config_name, frames, overrides, weights_dir, memory_factor, keep
    )
    naive = _naive_runs(config, common, folder, small)
    compute = json.loads(
        timed_command(
            [
                sys.executable,
                "-m",
                "orpose.pipeline.bench",
                "--flops",
                "--frames",
                str(small / "manifest.jsonl"),
                *common,
            ]
        )["stdout"]
        .strip()
        .splitlines()[-1]
    )
    runs = _pipeline_runs(pipelines, common, folder, small, large)
    comparisons = _compare_with_naive(folder, runs, pipelines, config)
    lines = _naive_lines(config, overrides, frames, memory_factor, folder, naive)
    if persons is not None:
        lines.insert(
            1,
            f"persons    : the detector's top {persons} boxes a frame kept whatever their score (--persons: seeded "
            "weights detect no one); a workload for the keypoint and lifting stages, not labels",
        )
    lines += _pipeline_lines(pipelines, runs, comparisons, frames, naive)
    if naive["kernel_stats"] is not None:
        lines.append(_kernel_line(folder, naive, runs, pipelines, frames))
    lines += _compute_line(compute, runs, pipelines, peak_tflops, config.precision)
    for variant, c in comparisons.items():
        lines += [f"  {variant}: {p}" for p in c.problems[:10]]
    return lines


def _bench_inputs(config_name: str, frames: int, overrides: list[str], weights_dir, memory_factor: int, keep):
    """The config, the options every command of the bench gets, the work folder and its two synthetic sources
    (N and memory_factor x N frames); the tiny teacher's seeded weights are made when missing."""
    from orpose.configs.schema import load_teacher_config, parse_overrides
    from orpose.synth.generate import SynthSettings, generate
    from orpose.teachers.weights import init_seeded_weights, missing_checkpoints

    config = load_teacher_config(config_name, parse_overrides(overrides))
    wd = weights_dir or config.weights_dir
    if missing_checkpoints(config, wd):
        if config.name != "tiny":
            raise FileNotFoundError(
                f"weights of {config.name} are missing: run `labels weights --teacher {config.name}`"
            )
        init_seeded_weights(config, wd)
    folder = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="labels-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    small, large = folder / f"frames-{frames}", folder / f"frames-{frames * memory_factor}"
    for target, count in ((small, frames), (large, frames * memory_factor)):
        if not (target / "manifest.jsonl").exists():
            generate(target, SynthSettings(frames=count, seed=0, cameras=1, calibrated_depth=False), progress=False)
    return config, ["--config", config_name, "--weights-dir", str(wd), *overrides], folder, small, large


def _naive_runs(config, common: list[str], folder: Path, small: Path) -> dict:
    """The naive loop as its mmdet config builds the model: mmcv's kernels (RoIAlign, NMS, deformable
    convolution). When the pipeline uses other kernels, the loop runs a second time with them, so the report
    can say how much of the ratio is the kernels and how much the pipeline. mmcv's kernels run on CPU only
    (make setup builds its CPU ops): on a GPU both loops use the pipeline's kernels."""
    from orpose.teachers.install_check import KERNEL_FIELDS
    from orpose.teachers.mm import pick_device

    pipeline_kernels = {field: getattr(config.detector, field) for field in KERNEL_FIELDS}
    on_cpu = str(pick_device(config.device)) == "cpu"
    stock_kernels = {field: "mmcv" for field in KERNEL_FIELDS} if on_cpu else pipeline_kernels

    def naive_run(kernels: dict, name: str) -> tuple[dict, dict]:
        run = timed_command(
            [
                sys.executable, "-m", "orpose.pipeline.bench", "--naive",
                "--frames", str(small / "manifest.jsonl"), "--naive-out", str(folder / name),
                *common, *(f"detector.{field}={kernel}" for field, kernel in kernels.items()),
            ]
        )  # fmt: skip
        return run, json.loads(run["stdout"].strip().splitlines()[-1])

    run, stats = naive_run(stock_kernels, "naive.h5")
    kernel = "+".join(sorted({k for k in pipeline_kernels.values()}))  # e.g. "torchvision"
    kernel_stats = None
    if pipeline_kernels != stock_kernels:
        kernel_stats = naive_run(pipeline_kernels, f"naive-{kernel}.h5")[1]
    return dict(
        run=run, stats=stats, kernel_stats=kernel_stats, kernel=kernel,
        stock_kernels=stock_kernels, pipeline_kernels=pipeline_kernels,
    )  # fmt: skip


def _pipeline_runs(pipelines, common: list[str], folder: Path, small: Path, large: Path) -> dict:
    """(variant, "small" | "large") -> the `labels run` of that variant on that source, timed, with its summary."""
    runs: dict = {}
    for variant in pipelines:
        executor, fused = PIPELINES[variant]
        for size, target in (("small", small), ("large", large)):
            out = folder / f"run-{variant}-{target.name}"
            run = timed_command(
                [
                    sys.executable, "-m", "orpose.pipeline.cli", "run", "--executor", executor,
                    "--frames", str(target / "manifest.jsonl"), "--out", str(out), "--new-run", "--no-progress",
                    "--summary-json", str(out) + ".json", *common, f"run.fuse_models={str(fused).lower()}",
                ]
            )  # fmt: skip
            runs[variant, size] = dict(run, run=out, summary=json.loads(Path(str(out) + ".json").read_text()))
    return runs


def _compare_with_naive(folder: Path, runs: dict, pipelines, config) -> dict:
    """Each variant's labels of the small source against the naive loop's, within the tolerances measured for the
    device and precision (`label_store.compare.tolerances_for`): both sides run the same models on the same
    pixels, in another summation order (crops batched or one at a time) and, in bf16, with mmdet's heads under
    autocast in the naive loop and in fp32 in the pipeline."""
    from orpose.label_store.compare import compare, load_labels, tolerances_for
    from orpose.teachers.mm import pick_device

    tolerances = tolerances_for(pick_device(config.device).type, config.precision)
    naive_labels = _naive_labels(folder / "naive.h5")
    return {
        variant: compare(naive_labels, load_labels(runs[variant, "small"]["run"]), tolerances, fields=NAIVE_FIELDS)
        for variant in pipelines
    }


def _steady_fps(stats: dict, frames: int) -> float:
    """The naive loop's frames/s without its model loading."""
    return frames / sum(v for k, v in stats["seconds"].items() if k != "load")


def _naive_lines(config, overrides, frames: int, memory_factor: int, folder: Path, naive: dict) -> list[str]:
    run, stats = naive["run"], naive["stats"]
    s = stats["seconds"]
    return [
        f"bench: teacher {config.name}, {frames} synthetic 640x480 frames, {os.cpu_count()} CPUs, "
        f"device {config.device}, overrides {overrides or 'none'}; work in {folder}",
        f"naive loop : {frames / run['seconds']:.3f} frames/s (wall {run['seconds']:.1f} s, models loaded in it; "
        f"kernels: {_kernels_text(naive['stock_kernels'])}), peak RSS {run['peak_rss_mb']:.0f} MB"
        + (f", GPU {stats['gpu_peak_mb']:.0f} MB" if stats.get("gpu_peak_mb") is not None else "")
        + f"; its loop alone {_steady_fps(stats, frames):.3f} frames/s",
        f"  naive stages s: load {s['load']:.1f}, decode {s['decode']:.1f}, detect {s['detect']:.1f}, "
        f"keypoints {s['keypoints']:.1f}, lift {s['lift']:.1f}, write {s['write']:.1f}",
        f"pipelines  : end to end at {frames} frames (start-up included on both sides) | peak RSS at {frames} "
        f"frames (process tree) | at {frames * memory_factor} frames | steady state (after the first batch, "
        f"{frames * memory_factor}-frame run)",
    ]


def _pipeline_lines(pipelines, runs: dict, comparisons: dict, frames: int, naive: dict) -> list[str]:
    naive_fps, naive_rss = frames / naive["run"]["seconds"], naive["run"]["peak_rss_mb"]
    naive_steady = _steady_fps(naive["stats"], frames)
    lines = []
    for variant in pipelines:
        small_run, large_run = runs[variant, "small"], runs[variant, "large"]
        fps = frames / small_run["seconds"]
        growth = 100 * (large_run["peak_rss_mb"] / small_run["peak_rss_mb"] - 1)
        steady = large_run["summary"]["steady_fps"]
        steady_text = (
            f"{steady:.3f} frames/s = {steady / naive_steady:.2f} x naive"
            if steady
            else f"no steady state: {large_run['summary'].get('steady_note') or 'none measured'}"
        )
        c = comparisons[variant]
        lines.append(
            f"  {variant:<10}: {fps:.3f} frames/s = {fps / naive_fps:.2f} x naive | "
            f"{small_run['peak_rss_mb']:.0f} MB = "
            f"{small_run['peak_rss_mb'] / naive_rss:.2f} x naive | {large_run['peak_rss_mb']:.0f} MB "
            f"({growth:+.1f} %) | {steady_text}; labels "
            f"{'same' if c.ok else 'DIFFERENT'} ({c.matched} persons matched, {c.added} added, {c.removed} removed, "
            f"max keypoint difference {c.keypoint_px.max:.2g} px)"
            + (
                f"; GPU {small_run['summary']['gpu_peak_mb']:.0f} MB peak allocated"
                if small_run["summary"].get("gpu_peak_mb") is not None
                else ""
            )
        )
        busy = small_run["summary"]["stage_seconds"]
        total = sum(busy.values()) or 1.0
        lines.append(
            "      busy s per stage: " + ", ".join(f"{k} {v:.1f} ({100 * v / total:.0f} %)" for k, v in busy.items())
        )
    return lines


def _kernel_line(folder: Path, naive: dict, runs: dict, pipelines, frames: int) -> str:
    """The naive loop with the pipelines' kernels against its stock loop: the kernels' part of the ratios."""
    kernel_steady, naive_steady = _steady_fps(naive["kernel_stats"], frames), _steady_fps(naive["stats"], frames)
    stock, swapped = _naive_labels(folder / "naive.h5"), _naive_labels(folder / f"naive-{naive['kernel']}.h5")
    identical = stock.keys() == swapped.keys() and all(
        np.array_equal(stock[frame]["persons"][key], swapped[frame]["persons"][key])
        for frame in stock
        for key in NAIVE_FIELDS
    )
    return (
        f"kernel     : the naive loop with the pipelines' kernels ({_kernels_text(naive['pipeline_kernels'])}) "
        f"{kernel_steady:.3f} frames/s "
        f"= {kernel_steady / naive_steady:.2f} x its stock loop, "
        f"labels {'identical' if identical else 'DIFFERENT'} "
        f"to the bit (the part of the steady ratios that is the kernel, not the pipeline); steady state over "
        "that loop: "
        + ", ".join(
            f"{v} {runs[v, 'large']['summary']['steady_fps'] / kernel_steady:.2f} x"
            if runs[v, "large"]["summary"]["steady_fps"]
            else f"{v} none"
            for v in pipelines
        )
    )


def _compute_line(compute: dict, runs: dict, pipelines, peak_tflops: float | None, precision: str) -> list[str]:
    """FLOPs per frame and the fraction of the device's peak, for the teacher (best steady state) and per model
    stage (its busy seconds in the first pipeline variant's N-frame run: the stage's own time, not the run's)."""
    peak = peak_tflops or dense_peak_tflops(compute["device"], precision)
    peak_name = "TF32" if precision == "fp32" else "bf16/fp16"

    def of_peak(tflops: float) -> str:
        return f"{100 * tflops / peak:.3g} % of peak" if peak else "peak unknown (give --peak-tflops)"

    best = max((runs[v, "large"]["summary"]["steady_fps"] or 0.0) for v in pipelines)
    achieved = compute["flops_per_frame"] * best / 1e12
    lines = [
        f"compute    : {compute['flops_per_frame'] / 1e9:.1f} GFLOP per frame (convolutions and matrix products, "
        f"torch's flop counter, mean of {compute['frames']} frames); best steady state {achieved:.4f} TFLOP/s on "
        f"{compute['device']}: "
        + (
            f"{of_peak(achieved)} (its dense {peak_name} peak, {peak:g} TFLOP/s)"
            if peak
            else "peak unknown (give --peak-tflops)"
        )
    ]
    small = runs[pipelines[0], "small"]
    busy, frames = small["summary"]["stage_seconds"], small["summary"].get("frames_labelled") or 0
    parts = []
    for stage, flops in compute.get("stage_flops_per_frame", {}).items():
        seconds = busy.get(stage)
        if seconds and frames:
            tflops = flops * frames / seconds / 1e12
            parts.append(f"{stage} {flops / 1e9:.1f} GFLOP/frame, {tflops:.4f} TFLOP/s, {of_peak(tflops)}")
        else:
            parts.append(f"{stage} {flops / 1e9:.1f} GFLOP/frame")
    if parts:
        lines.append(f"  per stage ({pipelines[0]}, busy seconds of its {frames}-frame run): " + "; ".join(parts))
    return lines


def _main() -> int:
    import argparse

    from orpose.configs.schema import parse_overrides

    parser = argparse.ArgumentParser(description="internal: one side of `labels bench`")
    parser.add_argument("--naive", action="store_true")
    parser.add_argument("--flops", action="store_true", help="count the teacher's FLOPs per frame instead")
    parser.add_argument("--config", required=True)
    parser.add_argument("--frames", required=True)
    parser.add_argument("--naive-out", help="the naive loop's HDF5 output (with --naive)")
    parser.add_argument("--weights-dir")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    if args.naive == args.flops:
        parser.error("give one of --naive and --flops")
    if args.flops:
        stats = teacher_flops(args.config, parse_overrides(args.overrides), args.frames, args.weights_dir)
    else:
        stats = naive_loop(args.config, parse_overrides(args.overrides), args.frames, args.naive_out, args.weights_dir)
    print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
