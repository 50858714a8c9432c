"""Records made by the real tiny teacher on the bundled sample, plus one rejected frame."""

from pathlib import Path

import numpy as np
import pytest

from configs.schema import load_teacher_config
from frames.sources import ManifestSource, open_source
from label_store.provenance import make_provenance
from stages.records import encode_masks, labelled_record, rejected_record
from teachers.teacher import Teacher

SAMPLE = Path(__file__).parents[2] / "data" / "sample"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "bad_frames"


def label_frames(teacher: Teacher, frames) -> list:
    thresholds = teacher.config.thresholds
    outputs = teacher([f.color_bgr for f in frames])
    records = []
    for frame, out in zip(frames, outputs):
        hard_mask = out.keypoints[..., 2] > thresholds.keypoint_score
        pose_hard = teacher.lifter(out.keypoints, out.boxes, hard_mask)
        records.append(labelled_record(frame.ref, frame.calibration, frame.depth_mm(), out.boxes, out.scores,
                                       encode_masks(out.masks), out.keypoints, out.spread, out.pose3d, pose_hard,
                                       thresholds.keypoint_score, thresholds.min_keypoints))
    return records


@pytest.fixture(scope="session")
def tiny_teacher(tiny_weights):
    return Teacher(load_teacher_config("tiny", {"thresholds.box_score": 0.3, "detector.max_persons": 5}), tiny_weights)


@pytest.fixture(scope="session")
def records(tiny_teacher):
    source = open_source(SAMPLE / "manifest.jsonl")
    frames = [source.load(ref) for ref in source.refs()[:3]]
    recs = label_frames(tiny_teacher, frames)
    bad = ManifestSource(FIXTURES / "manifest.jsonl")
    ref = next(r for r in bad.refs() if r.frame_id == "truncated_png")
    try:
        bad.load(ref)
    except Exception as error:  # noqa: BLE001 - the fixture's whole point
        recs.insert(1, rejected_record(ref, bad.calibrations()[ref.camera_id], error))
    return recs


@pytest.fixture(scope="session")
def provenance(tiny_teacher):
    return make_provenance(tiny_teacher.config, tiny_teacher.checkpoint_sha256, code="test")
