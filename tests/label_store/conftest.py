"""Records made by the real tiny teacher on the bundled sample (the in-process executor over the
stage graph), plus one rejected frame."""

from pathlib import Path

import pytest

from orpose.configs.schema import load_teacher_config
from orpose.frames.files import sha256_file
from orpose.frames.sources import ManifestSource, open_source
from orpose.label_store.provenance import make_provenance
from orpose.pipeline.executors import LocalExecutor
from orpose.stages.context import StageContext
from orpose.stages.graph import default_graph
from orpose.stages.records import rejected_record
from orpose.teachers.weights import checkpoint_path
from tests.plans import pending_from_refs

SAMPLE = Path(__file__).parents[2] / "data" / "sample"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "bad_frames"


@pytest.fixture(scope="session")
def tiny_config():
    return load_teacher_config("tiny", {"thresholds.box_score": 0.3, "detector.max_persons": 5})


@pytest.fixture(scope="session")
def records(tiny_config, tiny_weights, tmp_path_factory):
    source = open_source(SAMPLE / "manifest.jsonl")
    executor = LocalExecutor(
        default_graph(), StageContext(tiny_config, tiny_weights, source.calibrations()), batch_size=3
    )
    planned = tmp_path_factory.mktemp("records")
    batch = next(executor.batches(pending_from_refs(planned, source.refs()[:3])))
    recs = list(batch["record"])
    bad = ManifestSource(FIXTURES / "manifest.jsonl")
    ref = next(r for r in bad.refs() if r.frame_id == "truncated_png")
    try:
        bad.load(ref)
    except Exception as error:  # noqa: BLE001 - the fixture's whole point
        recs.insert(1, rejected_record(ref, bad.calibrations()[ref.camera_id], error.reason, str(error)))
    return recs


@pytest.fixture(scope="session")
def provenance(tiny_config, tiny_weights):
    checkpoints = {
        spec.checkpoint: sha256_file(checkpoint_path(tiny_weights, spec.checkpoint))
        for spec in (tiny_config.detector, tiny_config.keypoints, tiny_config.lifter)
    }
    return make_provenance(tiny_config, checkpoints, code="test")
