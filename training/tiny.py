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

from orpose.checkout import source_checkout
from orpose.configs.schema import CONFIG_DIR, load_teacher_config
from orpose.teachers.mm import load_mm_config
from orpose.teachers.weights import checkpoint_path

__all__ = ["train_detector", "train_keypoints", "train_lifter", "main"]


def _runner_common(cfg, work_dir: Path, iters: int, lr: float, seed: int, warmup: int = 100) -> None:
    warmup = max(1, min(warmup, iters // 4))
    cfg.work_dir = str(work_dir)
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=iters, val_interval=iters + 1)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None
    cfg.optim_wrapper = dict(
        type="OptimWrapper", optimizer=dict(type="AdamW", lr=lr, weight_decay=1e-4), clip_grad=dict(max_norm=10.0)
    )
    cfg.param_scheduler = [
        dict(type="LinearLR", start_factor=0.01, by_epoch=False, begin=0, end=warmup),
        dict(type="CosineAnnealingLR", by_epoch=False, begin=warmup, end=iters, eta_min=lr * 0.02),
    ]
    cfg.default_hooks = dict(
        timer=dict(type="IterTimerHook"),
        logger=dict(type="LoggerHook", interval=50),
        param_scheduler=dict(type="ParamSchedulerHook"),
        checkpoint=dict(type="CheckpointHook", interval=iters, by_epoch=False, save_last=True),
        sampler_seed=dict(type="DistSamplerSeedHook"),
    )
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
        batch_size=2,
        num_workers=0,
        persistent_workers=False,
        sampler=dict(type="DefaultSampler", shuffle=True),
        dataset=dict(
            type="CocoDataset",
            data_root=str(data),
            ann_file="annotations.json",
            data_prefix=dict(img=""),
            metainfo=dict(classes=("person",)),
            filter_cfg=dict(filter_empty_gt=True, min_size=4),
            pipeline=[
                dict(type="LoadImageFromFile"),
                dict(type="LoadAnnotations", with_bbox=True, with_mask=True),
                # the TTA views' sizes: shorter side 400 and 480
                dict(type="RandomChoiceResize", scales=[(533, 400), (640, 480)], keep_ratio=True),
                dict(type="RandomFlip", prob=0.5),
                dict(type="PackDetInputs"),
            ],
        ),
    )
    runner = Runner.from_cfg(cfg)
    runner.train()
    _save(
        runner, checkpoint_path(out, config.detector.checkpoint), {"trained": "synthetic", "iters": iters, "seed": seed}
    )


def _register_cached_image_loader() -> str:
    """mmpose's LoadImage with each decoded frame kept in memory: a top-down epoch visits every
    frame once per person, and decoding the PNG was half of each training iteration."""
    from mmpose.datasets.transforms import LoadImage
    from mmpose.registry import TRANSFORMS

    @TRANSFORMS.register_module(name="CachedLoadImage", force=True)
    class CachedLoadImage(LoadImage):
        decoded: dict = {}

        def transform(self, results: dict) -> dict:
            path = results["img_path"]
            if path not in self.decoded:
                self.decoded[path] = super().transform(dict(img_path=path))["img"]
            return super().transform({**results, "img": self.decoded[path].copy()})

    return "CachedLoadImage"


def train_keypoints(data: Path, out: Path, work: Path, iters: int, seed: int) -> None:
    from mmengine.runner import Runner

    config = load_teacher_config("tiny")
    cfg = load_mm_config(config.keypoints.mm_config, {}, CONFIG_DIR)
    cfg.default_scope = "mmpose"
    _runner_common(cfg, work / "keypoints", iters, lr=4e-3, seed=seed)
    codec = cfg.codec
    cfg.train_dataloader = dict(
        batch_size=32,
        num_workers=0,
        persistent_workers=False,
        sampler=dict(type="DefaultSampler", shuffle=True),
        dataset=dict(
            type="CocoDataset",
            data_root=str(data),
            data_mode="topdown",
            ann_file="annotations.json",
            data_prefix=dict(img=""),
            pipeline=[
                dict(type=_register_cached_image_loader()),
                dict(type="GetBBoxCenterScale"),
                dict(type="RandomFlip", direction="horizontal"),
                dict(type="RandomBBoxTransform"),
                dict(type="TopdownAffine", input_size=codec["input_size"]),
                dict(type="GenerateTarget", encoder=codec),
                dict(type="PackPoseInputs"),
            ],
        ),
    )
    runner = Runner.from_cfg(cfg)
    runner.train()
    _save(
        runner,
        checkpoint_path(out, config.keypoints.checkpoint),
        {"trained": "synthetic", "iters": iters, "seed": seed},
    )


def silhouette_box(person, camera: np.ndarray, intr) -> np.ndarray:
    """xyxy box of a generated person's silhouette (what the detector is trained to find), from
    its capsules: each end sphere projects to a disc of radius f * r / z."""
    from orpose.frames.geometry import apply_rigid, project

    ends = np.array([end for capsule in person.capsules for end in (capsule.a, capsule.b)])
    radii = np.array([capsule.radius for capsule in person.capsules for _ in range(2)])
    cam = apply_rigid(camera, ends)
    centres = project(cam, intr)
    reach = intr.fx * radii / cam[:, 2]
    return np.concatenate([(centres - reach[:, None]).min(0), (centres + reach[:, None]).max(0)])


def lifting_pairs(count: int, seed: int, noise: float = 0.04) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2D (COCO-17 pixels), boxes and 3D (COCO-17 camera mm) of random people seen by random
    ceiling cameras placed as the generator's rigs place them (upper corners, 2.4-2.75 m high,
    looking at the table): the generator's skeletons, without rendering. Boxes are the
    silhouette's, jittered: the lifter's framing step uses the detector's box, and boxes drawn
    around the joints instead cost 17 mm of MPJPE on held-out frames. Half the 2D poses get
    Gaussian noise of up to `noise` x the box's longer side per joint, as a keypoint model's
    errors would (a lifter trained on exact 2D alone trusts every pixel)."""
    from orpose.frames.calibration import Intrinsics
    from orpose.frames.geometry import apply_rigid, look_at, project
    from orpose.synth.body import sample_person

    rng = np.random.default_rng(seed)
    intr = Intrinsics(640, 480, 576.0, 576.0, 319.5, 239.5)
    keypoints, boxes, joints = [], [], []
    while len(keypoints) < count:
        person = sample_person(rng, rng.uniform([-1600, -1100], [1600, 1100]), rng.uniform(0, 360))
        corner = rng.choice([-1, 1], size=2) * np.array([2500, 2000])
        eye = np.array([*(corner + rng.uniform(-200, 200, size=2)), rng.uniform(2400, 2750)])
        camera = look_at(eye, np.array([rng.uniform(-350, 350), rng.uniform(-250, 250), rng.uniform(650, 950)]))
        cam = apply_rigid(camera, person.joints)
        uv = project(cam, intr)
        if not np.all(np.isfinite(uv)):
            continue
        box = silhouette_box(person, camera, intr)
        size = (box[2:] - box[:2]).max()
        # a detector's box, not the silhouette's: each side off by up to 6 % of the box
        box = box + rng.uniform(-0.06, 0.06, size=4) * size
        if rng.random() < 0.5:
            uv = uv + rng.normal(0, rng.uniform(0, noise) * size, size=uv.shape)
        keypoints.append(uv)
        boxes.append(box)
        joints.append(cam)
    return np.array(keypoints), np.array(boxes), np.array(joints)


def train_lifter(out: Path, work: Path, iters: int, seed: int, pairs: int = 60000) -> None:
    from mmengine.dataset import BaseDataset
    from mmengine.runner import Runner
    from mmpose.registry import DATASETS

    from orpose.joints import coco_to_h36m_positions
    from orpose.teachers.lifter import normalise_for_lifter

    config = load_teacher_config("tiny")
    cfg = load_mm_config(config.lifter.mm_config, {}, CONFIG_DIR)
    cfg.default_scope = "mmpose"
    codec = cfg.codec
    keypoints, boxes, joints = lifting_pairs(pairs, seed)
    # The inference rule of teachers.lifter, step 2 (H36M framing); the codec does step 3 itself.
    framed = normalise_for_lifter(
        coco_to_h36m_positions(keypoints), boxes, config.lifter.h36m_box_center, config.lifter.h36m_box_scale, 0.0, 1.0
    )
    targets = coco_to_h36m_positions(joints) / 1000.0  # metres, as the codec's statistics

    @DATASETS.register_module(name="SynthLiftingPairs", force=True)
    class SynthLiftingPairs(BaseDataset):  # in-memory 2D-3D pairs
        def load_data_list(self):
            return [
                dict(
                    keypoints=framed[i : i + 1].astype(np.float32),
                    keypoints_visible=np.ones((1, 17), np.float32),
                    lifting_target=targets[i : i + 1].astype(np.float32),
                    lifting_target_visible=np.ones((1, 17), np.float32),
                    id=i,
                    category_id=1,
                )
                for i in range(len(framed))
            ]

    _runner_common(cfg, work / "lifter", iters, lr=1e-3, seed=seed, warmup=50)
    cfg.train_dataloader = dict(
        # no loader process: handing 256 PoseDataSamples per batch between processes costs more
        # than the codec's encoding (measured 0.9 vs 0.13 s per iteration)
        batch_size=256,
        num_workers=0,
        persistent_workers=False,
        sampler=dict(type="DefaultSampler", shuffle=True),
        dataset=dict(
            type="SynthLiftingPairs",
            pipeline=[
                dict(type="GenerateTarget", encoder=codec),
                dict(type="PackPoseInputs", meta_keys=("id", "target_root")),
            ],
        ),
    )
    runner = Runner.from_cfg(cfg)
    runner.train()
    _save(
        runner,
        checkpoint_path(out, config.lifter.checkpoint),
        {"trained": "synthetic pairs", "iters": iters, "seed": seed},
    )


def validate(weights_dir: Path, work: Path, frames: int = 20, seed: int = 200) -> dict:
    """Held-out synthetic frames (another seed) labelled by the pipeline with these weights,
    evaluated against the generator's ground truth with `labels evaluate`: the figures."""
    import subprocess
    import sys

    from orpose.synth.generate import SynthSettings, generate

    data = work / f"heldout-seed{seed}"
    if not (data / "annotations.json").exists():
        generate(data, SynthSettings(frames=frames, seed=seed, cameras=1, calibrated_depth=False), progress=False)
    run = work / f"heldout-run-seed{seed}"
    lifter_alone = lifter_on_ground_truth(weights_dir, data / "annotations.json")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "orpose.pipeline.cli",
            "run",
            "--config",
            "tiny",
            "--frames",
            str(data / "manifest.jsonl"),
            "--out",
            str(run),
            "--new-run",
            "--no-progress",
            "--weights-dir",
            str(weights_dir),
        ],
        check=True,
        cwd=source_checkout(),
        capture_output=True,
        text=True,
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "orpose.pipeline.cli",
            "evaluate",
            str(run),
            "--gt",
            str(data / "annotations.json"),
            "--json",
        ],
        check=True,
        cwd=source_checkout(),
        capture_output=True,
        text=True,
    )
    return {**json.loads(result.stdout), "lifter_on_gt_2d_mpjpe_mm": lifter_alone}


def lifter_on_ground_truth(weights_dir: Path, gt_path: Path) -> float:
    """Upper-body MPJPE (mm) of the lifter alone, fed the ground truth's 2D keypoints and boxes of
    the fully visible persons: separates the lifter's own error from the keypoint model's."""
    from orpose.evaluation.metrics import upper_body_errors
    from orpose.teachers.lifter import Lifter

    config = load_teacher_config("tiny")
    lifter = Lifter(
        config.lifter, checkpoint_path(weights_dir, config.lifter.checkpoint), torch.device("cpu"), CONFIG_DIR
    )
    # persons with every joint labelled: COCO writes (0, 0) for a joint outside the frame
    annotations = [
        a
        for a in json.loads(gt_path.read_text())["annotations"]
        if a.get("keypoints_3d") and a.get("num_keypoints") == 17
    ]
    keypoints = np.array([a["keypoints"] for a in annotations], dtype=np.float64).reshape(-1, 17, 3)
    boxes = np.array([a["bbox"] for a in annotations], dtype=np.float64)
    boxes[:, 2:] += boxes[:, :2]
    truth = np.array([a["keypoints_3d"] for a in annotations], dtype=np.float64).reshape(-1, 17, 3)
    return float(upper_body_errors(truth, lifter(keypoints, boxes)).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orpose.training.tiny", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out",
        default="data/tiny_teacher",
        help="weights folder: checkpoints go to OUT/tiny/ (default data/tiny_teacher, where "
        "configs/teachers/tiny.py reads them)",
    )
    parser.add_argument("--work", default="build/tiny-teacher", help="training data and logs")
    parser.add_argument(
        "--frames", type=int, default=150, help="synthetic training instants, 2 cameras each (default 150)"
    )
    parser.add_argument("--detector-iters", type=int, default=800, help="(default 800, about 29 min here)")
    parser.add_argument("--keypoint-iters", type=int, default=3000, help="(default 3000, about 35 min here)")
    parser.add_argument("--lifter-iters", type=int, default=4000, help="(default 4000, about 9 min here)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["detector", "keypoints", "lifter"], help="train one model only")
    parser.add_argument("--validate-only", action="store_true", help="only print the held-out figures of OUT's weights")
    args = parser.parse_args(argv)
    if args.validate_only:
        figures = validate(Path(args.out), Path(args.work))
        print(_figures_line(figures))
        return 0
    from orpose.synth.generate import SynthSettings, generate

    work, out = Path(args.work), Path(args.out)
    data = work / "train-frames"
    if not (data / "annotations.json").exists():
        generate(data, SynthSettings(frames=args.frames, seed=100 + args.seed, cameras=2, calibrated_depth=False))
    torch.manual_seed(args.seed)
    timings = {}
    for name, train in (
        ("lifter", lambda: train_lifter(out, work, args.lifter_iters, args.seed)),
        ("keypoints", lambda: train_keypoints(data, out, work, args.keypoint_iters, args.seed)),
        ("detector", lambda: train_detector(data, out, work, args.detector_iters, args.seed)),
    ):
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


def _percent(swaps: dict | None) -> str:
    return "n/a" if not swaps or swaps["rate"] is None else f"{100 * swaps['rate']:.1f} %"


def _figures_line(figures: dict) -> str:
    mpjpe = figures["mpjpe_upper_body_mm"]
    return (
        f"held-out synthetic frames (seed 200): box AP50 {figures['box']['AP50']:.3f} (target >= 0.9), "
        f"keypoint AP {figures['keypoints']['AP']:.3f} (target >= 0.6), soft-3D upper-body MPJPE "
        f"{_mm(mpjpe)} (target < 80 mm), "
        f"PCK@0.2 {figures['pck']['mean']:.3f}, left/right swapped {_percent(figures.get('left_right_swaps'))}, "
        f"lifter alone on ground-truth 2D "
        f"{figures.get('lifter_on_gt_2d_mpjpe_mm', float('nan')):.1f} mm"
    )


if __name__ == "__main__":
    raise SystemExit(main())
