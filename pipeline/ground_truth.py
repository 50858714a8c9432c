"""A run made from ground truth (issue 41, step 1): the same schema, readers and training code as a teacher's run,
so that "a student trained on ground truth" and "a student trained on pseudo-labels" differ only in the labels.

`ground_truth_run(frames_dir, out)` labels a `labels synth` folder (its `manifest.jsonl` and `annotations.json`)
through the real driver (`pipeline.run.run_labels`: the plan, the shard commits, the index, resume): the
executor handed in yields, for each planned frame, the record its ground truth gives, built by the same
`stages.records.labelled_record` as the teacher's assemble stage:

- box, mask (the annotation's RLE), score 1;
- the soft 2D set: the 17 COCO keypoints with confidence 1 where the annotation labels them (visibility 1 or 2),
  0 elsewhere; the hard set: those keypoints, a skeleton kept when it has `thresholds.min_keypoints` of them;
- 3D: the annotation's `keypoints_3d` (COCO-17, camera mm) as Human3.6M-17 (`joints.coco_to_h36m_positions`),
  root-relative for `pose3d_soft` / `pose3d_hard`, as they are for `pose3d_camera`;
- the keypoints carried onto the depth image as the teacher's are (its depth, its calibration).

`labels synth --as-run RUN` writes it next to the frames.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from orpose.configs.schema import TeacherConfig, load_teacher_config
from orpose.frames.decode import decode_depth
from orpose.frames.sources import ManifestSource, depth_counts_to_mm
from orpose.joints import coco_to_h36m_positions
from orpose.pipeline.run import run_labels
from orpose.pipeline.summary import TIMED_STAGES, RunSummary
from orpose.stages.records import labelled_record

__all__ = ["ground_truth_run", "ground_truth_config", "GroundTruthExecutor", "persons_of"]

GROUND_TRUTH = "ground_truth"


def ground_truth_config() -> TeacherConfig:
    """The tiny teacher's config renamed: its thresholds decide the hard set of the ground truth too."""
    return load_teacher_config("tiny", {"name": GROUND_TRUTH, "device": "cpu"})


def persons_of(annotations: list[dict], min_keypoints: int) -> dict[str, np.ndarray]:
    """`labelled_record`'s person arguments from a frame's COCO annotations (see the module docstring)."""
    n = len(annotations)
    keypoints = np.zeros((n, 17, 3), dtype=np.float32)
    camera = _camera_poses(annotations)
    pose = (camera - camera[:, :1]).astype(np.float32)  # root-relative, the pelvis at the origin, as the lifter's
    boxes = np.zeros((n, 4), dtype=np.float32)
    masks = []
    for i, annotation in enumerate(annotations):
        coco = np.asarray(annotation["keypoints"], dtype=np.float32).reshape(17, 3)
        keypoints[i, :, :2] = coco[:, :2]
        keypoints[i, :, 2] = coco[:, 2] > 0
        x, y, w, h = annotation["bbox"]
        boxes[i] = (x, y, x + w, y + h)
        masks.append(annotation["segmentation"]["counts"] if annotation.get("segmentation") else "")
    hard_mask = keypoints[..., 2] > 0
    return {
        "boxes": boxes,
        "scores": np.ones(n, dtype=np.float32),
        "mask_rle": masks,
        "keypoints": keypoints,
        "spread": np.zeros((n, 17), dtype=np.float32),
        "hard_mask": hard_mask,
        "hard_valid": hard_mask.sum(axis=1) >= min_keypoints,
        "pose_soft": pose,
        "pose_hard": pose.copy(),
    }


class GroundTruthExecutor:
    """An executor (`pipeline.executors.Executor`) whose records are the ground truth of each planned frame."""

    def __init__(self, source: ManifestSource, annotations: dict, config: TeacherConfig, batch_size: int = 16):
        self.source, self.config, self.batch_size = source, config, batch_size
        by_image: dict[int, list[dict]] = {}
        for annotation in annotations["annotations"]:
            by_image.setdefault(annotation["image_id"], []).append(annotation)
        self.persons = {image["frame_id"]: by_image.get(image["id"], []) for image in annotations["images"]}
        self.calibrations = source.calibrations()

    def __enter__(self) -> GroundTruthExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def lost_work(self, error: BaseException) -> bool:
        return False

    def log_location(self) -> str | None:
        return None

    def batches(self, frames):  # noqa: ANN001, ANN201 - PendingFrames in, batches of records out
        refs = {ref.frame_id: ref for ref in self.source.refs()}
        for batch in frames.iter_batches(self.batch_size):
            records = np.empty(len(batch["frame_id"]), dtype=object)
            for i, frame_id in enumerate(batch["frame_id"]):
                ref = refs[str(frame_id)]
                calibration = self.calibrations[ref.camera_id]
                depth = None
                if ref.depth_path is not None and calibration.depth_grid is not None:
                    counts = decode_depth(ref.depth_path, ref.frame_id, calibration.depth_grid)
                    depth = depth_counts_to_mm(counts, calibration.depth_unit_mm)
                people = persons_of(self.persons.get(ref.frame_id, []), self.config.thresholds.min_keypoints)
                record = labelled_record(ref, calibration, depth, **people)
                record.persons["pose3d_camera"] = _camera_poses(self.persons.get(ref.frame_id, [])).astype(np.float32)
                records[i] = record
            yield {
                "position": batch["position"],
                "frame_id": batch["frame_id"],
                "shard_index": batch["shard_index"],
                "instant": batch["instant"],
                "record": records,
                **{f"seconds_{stage}": np.zeros(len(records)) for stage in TIMED_STAGES},
            }


def _camera_poses(annotations: list[dict]) -> np.ndarray:
    """The annotations' 3D in the camera frame (Human3.6M-17, mm); NaN where an annotation has none."""
    poses = np.full((len(annotations), 17, 3), np.nan, dtype=np.float64)
    for i, annotation in enumerate(annotations):
        if annotation.get("keypoints_3d") is not None:
            poses[i] = coco_to_h36m_positions(np.asarray(annotation["keypoints_3d"], dtype=np.float64).reshape(17, 3))
    return poses


def ground_truth_run(frames_dir: str | Path, out: str | Path, progress: bool = False) -> RunSummary:
    """The ground truth of a `labels synth` folder as a run in `out` (see the module docstring)."""
    frames_dir = Path(frames_dir)
    manifest = frames_dir / "manifest.jsonl"
    annotations = json.loads((frames_dir / "annotations.json").read_text())
    source = ManifestSource(manifest)
    config = ground_truth_config()
    return run_labels(
        config, source, f"{manifest} (ground truth)", out, progress=progress, executor="local",
        engine=GroundTruthExecutor(source, annotations, config),
    )  # fmt: skip
