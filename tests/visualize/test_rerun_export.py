"""`labels export-rerun`: the .rrd is read back with Rerun's own API and checked against the shards."""

import sys
from collections import defaultdict

import numpy as np
import pytest

from orpose.label_store.reader import LabelRun
from tests.cli import labels

rr = pytest.importorskip("rerun", reason="the Rerun SDK (optional extra: pip install -e '.[rerun]') is not installed")


# Rerun names dataframe columns "entity:Component" up to 0.23 (the pinned stack) and
# "entity:Archetype:field" from 0.24 on (the modern stack's).
COLUMN_ALIASES = {
    "Blob": ("Blob", "EncodedImage:blob"),
    "Position2D": ("Position2D", "Points2D:positions", "Boxes2D:centers"),
    "Position3D": ("Position3D", "Points3D:positions"),
}


def _column(table, name: str) -> list:
    entity, _, component = name.rpartition(":")
    for alias in COLUMN_ALIASES.get(component, (component,)):
        if f"{entity}:{alias}" in table.column_names:
            return table.column(f"{entity}:{alias}").to_pylist()
    return [None] * table.num_rows


def test_export_rerun_writes_every_frame_person_and_point_cloud(sample_run, tmp_path):
    from rerun.dataframe import load_recording

    out = tmp_path / "run.rrd"
    result = labels("export-rerun", sample_run, "-o", out, "--no-progress")
    assert result.returncode == 0, result.stderr[-2000:]
    run = LabelRun(sample_run)
    by_camera = defaultdict(list)
    for frame_labels in run:
        by_camera[frame_labels.frame["camera_id"]].append(frame_labels)
    assert sum(len(f) for frames in by_camera.values() for f in frames) > 0  # persons to check

    recording = load_recording(out)
    entities = {column.entity_path for column in recording.schema().component_columns()}
    assert len(by_camera) == 2
    for camera, frames in by_camera.items():
        root = f"/cameras/{camera}"
        assert {f"{root}/color", f"{root}/depth", f"{root}/points"} <= entities
        table = recording.view(index="frame", contents=f"{root}/**").select().read_all()
        index = table.column("frame").to_pylist()
        assert sorted(i for i, blob in zip(index, _column(table, f"{root}/color:Blob")) if blob) == list(
            range(len(frames))
        )
        pinhole = recording.view(index="frame", contents=f"{root}/color").select_static().read_all()
        assert pinhole.num_rows == 1  # the color camera's pinhole, logged once
        clouds = [c for c in _column(table, f"{root}/points:Position3D") if c]
        assert len(clouds) == len(frames) and all(len(c) > 1000 for c in clouds)
        rows = {i: r for r, i in enumerate(index)}
        for i, frame_labels in enumerate(frames):
            r = rows[i]
            p = frame_labels.persons
            for k in range(len(frame_labels)):
                person = f"{root}/color/persons/{k}"
                points = _column(table, f"{person}/soft:Position2D")[r]
                np.testing.assert_allclose(points, p["keypoints_2d"][k][:, :2], atol=1e-3)
                confidence = _column(table, f"{person}/soft:confidence")[r]
                np.testing.assert_allclose(confidence, p["keypoints_2d"][k][:, 2], atol=1e-6)
                spread = _column(table, f"{person}/soft:tta_spread_px")[r]
                np.testing.assert_allclose(spread, p["keypoint_spread"][k], atol=1e-6)
                hard = _column(table, f"{person}/hard:Position2D")[r]
                assert len(hard or []) == int(p["hard_mask"][k].sum())
                joints = _column(table, f"{root}/skeletons3d/{k}/joints:Position3D")[r]
                if np.isfinite(p["pose3d_camera"][k]).all():  # metres in the recording, mm in the shard
                    np.testing.assert_allclose(joints, p["pose3d_camera"][k] / 1000.0, atol=1e-6)
                else:
                    assert joints is None
            # no person entity beyond the frame's persons carries data at this frame
            extra = f"{root}/color/persons/{len(frame_labels)}/soft:Position2D"
            assert _column(table, extra)[r] is None
            boxes = _column(table, f"{root}/color/boxes:Position2D")[r]
            assert len(boxes or []) == len(frame_labels)


def test_export_rerun_shows_the_fused_3d_of_a_multi_view_run(fused_ground_truth_run, tmp_path):
    from rerun.dataframe import load_recording

    out = tmp_path / "fused.rrd"
    result = labels("export-rerun", fused_ground_truth_run, "-o", out, "--no-progress")
    assert result.returncode == 0, result.stderr[-2000:]
    recording = load_recording(out)
    checked = 0
    for camera in ("day1/cam1", "day1/cam2"):
        root = f"/cameras/{camera}"
        table = recording.view(index="frame", contents=f"{root}/**").select().read_all()
        rows = {i: r for r, i in enumerate(table.column("frame").to_pylist())}
        frames = [f for f in LabelRun(fused_ground_truth_run) if f.frame["camera_id"] == camera]
        for i, frame_labels in enumerate(frames):
            p = frame_labels.persons
            for k in range(len(frame_labels)):
                joints = _column(table, f"{root}/fused3d/{k}/joints:Position3D")[rows[i]]
                triangulated = np.isfinite(p["pose3d_room_camera"][k]).all(axis=1)
                if not triangulated.any():
                    assert joints is None
                    continue
                np.testing.assert_allclose(joints, p["pose3d_room_camera"][k][triangulated] / 1000.0, atol=1e-6)
                checked += 1
    assert checked > 0


def test_export_rerun_without_the_sdk_says_how_to_install_it(sample_run, tmp_path, monkeypatch):
    from orpose.visualize import rerun_export

    monkeypatch.setitem(sys.modules, "rerun", None)  # import rerun now raises ImportError
    with pytest.raises(rerun_export.RerunMissing, match="pip install"):
        rerun_export.export_rerun(sample_run, tmp_path / "x.rrd")
