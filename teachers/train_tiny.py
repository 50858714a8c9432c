"""`make tiny-teacher`: train the tiny teacher's three models on synthetic scenes.

mmengine's Runner drives every loop (no hand-written training loop): the detector with mmdet's
CocoDataset and transforms on rendered color frames (boxes and masks), the keypoint model with
mmpose's top-down CocoDataset on the same frames' person boxes, the lifter with mmpose's codec on
2D-3D pairs of the generator's skeletons seen by random ceiling cameras (as Human3.6M serves the
real lifter). Fixed seeds. Checkpoints are written as `{"state_dict", "meta"}` under the tiny
config's names, so they load through the same strict path as published weights.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from configs.schema import CONFIG_DIR, load_teacher_config
from teachers.mm import load_mm_config
from teachers.weights import checkpoint_path

__all__ = ["train_detector", "train_keypoints", "train_lifter", "main"]


def _runner_common(cfg, work_dir: Path, iters: int, lr: float, seed: int, warmup: int = 100) -> None:
    warmup = max(1, min(warmup, iters // 4))
    cfg.work_dir = str(work_dir)
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=iters, val_interval=iters + 1)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=lr, weight_decay=1e-4),
                             clip_grad=dict(max_norm=10.0))
    cfg.param_scheduler = [dict(type="LinearLR", start_factor=0.01, by_epoch=False, begin=0, end=warmup),
                           dict(type="CosineAnnealingLR", by_epoch=False, begin=warmup, end=iters, eta_min=lr * 0.02)]
    cfg.default_hooks = dict(timer=dict(type="IterTimerHook"), logger=dict(type="LoggerHook", interval=50),
                             param_scheduler=dict(type="ParamSchedulerHook"),
                             checkpoint=dict(type="CheckpointHook", interval=iters, by_epoch=False, save_last=True),
                             sampler_seed=dict(type="DistSamplerSeedHook"))
    cfg.randomness = dict(seed=seed)
    cfg.visualizer = dict(type="Visualizer", vis_backends=[dict(type="LocalVisBackend")])
    cfg.log_processor = dict(by_epoch=False)
    cfg.load_from = None
    cfg.resume = False


def _save(runner, path: Path, meta: dict) -> None:
    model = runner.model.module if hasattr(runner.model, "module") else runner.model
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "meta": meta}, path)


def train_detector(data: Path, out: Path, work: Path, iters: int, seed: int) -> None:
    from mmengine.runner import Runner

    config = load_teacher_config("tiny")
    cfg = load_mm_config(config.detector.mm_config, {}, CONFIG_DIR)
    cfg.default_scope = "mmdet"
    _runner_common(cfg, work / "detector", iters, lr=2e-3, seed=seed)
    cfg.train_dataloader = dict(
        batch_size=2, num_workers=0, persistent_workers=False, sampler=dict(type="DefaultSampler", shuffle=True),
        dataset=dict(type="CocoDataset", data_root=str(data), ann_file="annotations.json", data_prefix=dict(img=""),
                     metainfo=dict(classes=("person",)), filter_cfg=dict(filter_empty_gt=True, min_size=4),
                     pipeline=[dict(type="LoadImageFromFile"), dict(type="LoadAnnotations", with_bbox=True, with_mask=True),
                               # the TTA views' sizes: shorter side 400 and 480
                               dict(type="RandomChoiceResize", scales=[(533, 400), (640, 480)], keep_ratio=True),
                               dict(type="RandomFlip", prob=0.5), dict(type="PackDetInputs")]))
    runner = Runner.from_cfg(cfg)
    runner.train()
    _save(runner, checkpoint_path(out, config.detector.checkpoint), {"trained": "synthetic", "iters": iters, "seed": seed})


def train_keypoints(data: Path, out: Path, work: Path, iters: int, seed: int) -> None:
    from mmengine.runner import Runner

    config = load_teacher_config("tiny")
    cfg = load_mm_config(config.keypoints.mm_config, {}, CONFIG_DIR)
    cfg.default_scope = "mmpose"
    _runner_common(cfg, work / "keypoints", iters, lr=4e-3, seed=seed)
    codec = cfg.codec
    cfg.train_dataloader = dict(
        batch_size=32, num_workers=0, persistent_workers=False, sampler=dict(type="DefaultSampler", shuffle=True),
        dataset=dict(type="CocoDataset", data_root=str(data), data_mode="topdown", ann_file="annotations.json",
                     data_prefix=dict(img=""),
                     pipeline=[dict(type="LoadImage"), dict(type="GetBBoxCenterScale"),
                               dict(type="RandomFlip", direction="horizontal"), dict(type="RandomBBoxTransform"),
                               dict(type="TopdownAffine", input_size=codec["input_size"]),
                               dict(type="GenerateTarget", encoder=codec), dict(type="PackPoseInputs")]))
    runner = Runner.from_cfg(cfg)
    runner.train()
    _save(runner, checkpoint_path(out, config.keypoints.checkpoint), {"trained": "synthetic", "iters": iters, "seed": seed})


def lifting_pairs(count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2D (COCO-17 pixels), boxes and 3D (COCO-17 camera mm) of random people seen by random
    ceiling cameras: the generator's skeletons, without rendering."""
    from frames.calibration import Intrinsics
    from frames.geometry import apply_rigid, look_at, project
    from synth.body import sample_person

    rng = np.random.default_rng(seed)
    intr = Intrinsics(640, 480, 576.0, 576.0, 319.5, 239.5)
    keypoints, boxes, joints = [], [], []
    while len(keypoints) < count:
        person = sample_person(rng, rng.uniform([-1500, -1000], [1500, 1000]), rng.uniform(0, 360))
        angle = rng.uniform(0, 2 * np.pi)
        eye = np.array([2800 * np.cos(angle), 2300 * np.sin(angle), rng.uniform(2200, 2800)])
        camera = look_at(eye, np.array([rng.uniform(-400, 400), rng.uniform(-300, 300), rng.uniform(600, 1000)]))
        cam = apply_rigid(camera, person.joints)
        uv = project(cam, intr)
        if not np.all(np.isfinite(uv)):
            continue
        lo, hi = uv.min(0), uv.max(0)
        pad = (hi - lo) * rng.uniform(0.05, 0.2, size=2)
        keypoints.append(uv)
        boxes.append(np.concatenate([lo - pad, hi + pad]))
        joints.append(cam)
    return np.array(keypoints), np.array(boxes), np.array(joints)


def train_lifter(out: Path, work: Path, iters: int, seed: int, pairs: int = 20000) -> None:
    from mmengine.dataset import BaseDataset
    from mmengine.runner import Runner
    from mmpose.registry import DATASETS

    from joints import coco_to_h36m_positions
    from teachers.lifter import normalise_for_lifter

    config = load_teacher_config("tiny")
    cfg = load_mm_config(config.lifter.mm_config, {}, CONFIG_DIR)
    cfg.default_scope = "mmpose"
    codec = cfg.codec
    keypoints, boxes, joints = lifting_pairs(pairs, seed)
    # The inference rule of teachers.lifter, step 2 (H36M framing); the codec does step 3 itself.
    framed = normalise_for_lifter(coco_to_h36m_positions(keypoints), boxes, config.lifter.h36m_box_center,
                                  config.lifter.h36m_box_scale, 0.0, 1.0)
    targets = coco_to_h36m_positions(joints) / 1000.0  # metres, as the codec's statistics

    @DATASETS.register_module(name="SynthLiftingPairs", force=True)
    class SynthLiftingPairs(BaseDataset):  # in-memory 2D-3D pairs

        def load_data_list(self):
            return [dict(keypoints=framed[i:i + 1].astype(np.float32), keypoints_visible=np.ones((1, 17), np.float32),
                         lifting_target=targets[i:i + 1].astype(np.float32),
                         lifting_target_visible=np.ones((1, 17), np.float32), id=i, category_id=1)
                    for i in range(len(framed))]

    _runner_common(cfg, work / "lifter", iters, lr=1e-3, seed=seed, warmup=50)
    cfg.train_dataloader = dict(
        batch_size=256, num_workers=0, persistent_workers=False, sampler=dict(type="DefaultSampler", shuffle=True),
        dataset=dict(type="SynthLiftingPairs", pipeline=[dict(type="GenerateTarget", encoder=codec),
                                                         dict(type="PackPoseInputs", meta_keys=("id", "target_root"))]))
    runner = Runner.from_cfg(cfg)
    runner.train()
    _save(runner, checkpoint_path(out, config.lifter.checkpoint), {"trained": "synthetic pairs", "iters": iters, "seed": seed})


def validate(weights_dir: Path, work: Path, frames: int = 20, seed: int = 200) -> dict:
    """Held-out synthetic frames (another seed) labelled by the pipeline with these weights,
    evaluated against the generator's ground truth with `labels evaluate`: the figures."""
    import subprocess
    import sys

    from synth.generate import SynthSettings, generate

    data = work / f"heldout-seed{seed}"
    if not (data / "annotations.json").exists():
        generate(data, SynthSettings(frames=frames, seed=seed, cameras=1, calibrated_depth=False), progress=False)
    run = work / f"heldout-run-seed{seed}"
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--config", "tiny", "--frames", str(data / "manifest.jsonl"),
                    "--out", str(run), "--new-run", "--no-progress", "--weights-dir", str(weights_dir)],
                   check=True, cwd=root, capture_output=True, text=True)
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "evaluate", str(run), "--gt", str(data / "annotations.json"),
                             "--json"], check=True, cwd=root, capture_output=True, text=True)
    return json.loads(result.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m teachers.train_tiny", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="weights", help="weights folder (checkpoints go to OUT/tiny/)")
    parser.add_argument("--work", default="build/tiny-teacher", help="training data and logs")
    parser.add_argument("--frames", type=int, default=200, help="synthetic training frames (default 200)")
    parser.add_argument("--detector-iters", type=int, default=1500)
    parser.add_argument("--keypoint-iters", type=int, default=1500)
    parser.add_argument("--lifter-iters", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["detector", "keypoints", "lifter"], help="train one model only")
    parser.add_argument("--validate-only", action="store_true", help="only print the held-out figures of OUT's weights")
    args = parser.parse_args(argv)
    if args.validate_only:
        figures = validate(Path(args.out), Path(args.work))
        print(_figures_line(figures))
        return 0
    from synth.generate import SynthSettings, generate

    work, out = Path(args.work), Path(args.out)
    data = work / "train-frames"
    if not (data / "annotations.json").exists():
        generate(data, SynthSettings(frames=args.frames, seed=100 + args.seed, cameras=2, calibrated_depth=False))
    torch.manual_seed(args.seed)
    timings = {}
    for name, train in (("lifter", lambda: train_lifter(out, work, args.lifter_iters, args.seed)),
                        ("keypoints", lambda: train_keypoints(data, out, work, args.keypoint_iters, args.seed)),
                        ("detector", lambda: train_detector(data, out, work, args.detector_iters, args.seed))):
        if args.only and args.only != name:
            continue
        started = time.perf_counter()
        train()
        timings[name] = round(time.perf_counter() - started, 1)
    (work / "timings.json").write_text(json.dumps(timings) + "\n")
    print(f"trained {', '.join(f'{k} in {v} s' for k, v in timings.items())}; checkpoints in {out / 'tiny'}")
    figures = validate(out, work)
    (work / "validation.json").write_text(json.dumps(figures, indent=1) + "\n")
    print(_figures_line(figures))
    return 0


def _mm(mpjpe: dict | None) -> str:
    return "n/a" if not mpjpe or mpjpe["mean"] is None else f"{mpjpe['mean']:.1f} mm"


def _figures_line(figures: dict) -> str:
    mpjpe = figures["mpjpe_upper_body_mm"]
    return (f"held-out synthetic frames (seed 200): box AP50 {figures['box']['AP50']:.3f} (target >= 0.9), "
            f"keypoint AP {figures['keypoints']['AP']:.3f} (target >= 0.6), soft-3D upper-body MPJPE "
            f"{_mm(mpjpe)} (target < 80 mm), "
            f"PCK@0.2 {figures['pck']['mean']:.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
