"""The real MVOR annotation file: its cameras, its rig, and what its 3D poses are, by measurement."""

import copy
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from orpose.frames.calibration import Intrinsics
from orpose.frames.errors import CalibrationError
from orpose.frames.geometry import apply_rigid, project
from orpose.frames.mvor import mvor_distortion_to_opencv, read_mvor_calibrations, read_mvor_rig
from orpose.frames.sources import MvorTreeSource, open_source


@pytest.fixture(scope="module")
def mvor(mvor_files) -> dict:
    return json.loads((mvor_files / "camma_mvor_2018.json").read_text())


def views(mvor: dict):
    """(3D pose (12, 4) in camera 1's frame, image entry, 2D keypoints (10, 3)) for every view of
    every 3D pose that has a 2D annotation of the same person."""
    images = {im["id"]: im for im in mvor["images"]}
    annotated = {(a["image_id"], a["person_id"]): a for a in mvor["annotations"] if not a["only_bbox"]}
    for pose in mvor["annotations3D"]:
        joints = np.asarray(pose["keypoints3D"], dtype=np.float64).reshape(12, 4)
        for image_id in map(int, pose["image_ids"].split("_")):
            a = annotated.get((image_id, pose["person_id"]))
            if a is not None:
                yield joints, images[image_id], np.asarray(a["keypoints"], dtype=np.float64).reshape(10, 3)


def reprojection_errors(mvor: dict, rig, intrinsics_by_camera) -> np.ndarray:
    """(views, 12 3D joints, 10 2D joints) pixel distances; NaN where either side is missing."""
    out = []
    for joints, image, keypoints in views(mvor):
        camera = f"cam{image['cam_id']}"
        moved = rig.move(joints[:, :3], rig.reference, camera)
        uv = project(moved, intrinsics_by_camera[camera])
        distance = np.linalg.norm(uv[:, None] - keypoints[None, :, :2], axis=-1)
        distance[joints[:, 3] <= 0] = np.nan
        distance[:, keypoints[:, 2] <= 0] = np.nan
        out.append(distance)
    return np.array(out)


def test_the_real_file_gives_three_registered_cameras_one_for_all_days(mvor_files):
    calibrations = read_mvor_calibrations(mvor_files / "camma_mvor_2018.json", depth_unit_mm=1.0)
    assert sorted(calibrations) == ["cam1", "cam2", "cam3"]
    cam1 = calibrations["cam1"]  # serial 1205220174 -> camera 1 (dataset_info.camid_2_num)
    assert (cam1.color.fx, cam1.color.fy, cam1.color.cx, cam1.color.cy) == (538.597, 538.2393, 315.8367, 241.9166)
    assert cam1.color.size == (640, 480) and cam1.registered and cam1.depth_unit_mm == 1.0
    assert cam1.color.distortion == ()  # pinhole: what the annotations follow (measured below)
    with pytest.raises(CalibrationError, match="depth_unit_mm"):
        read_mvor_calibrations(mvor_files / "camma_mvor_2018.json")


def test_the_rig_moves_points_between_cameras_and_into_the_room(mvor):
    rig = read_mvor_rig(mvor)
    assert rig.reference == "cam1" and sorted(rig.intrinsics) == ["cam1", "cam2", "cam3"]
    points = np.array([[100.0, -200.0, 2500.0], [0.0, 0.0, 1000.0]])
    there = rig.move(points, "cam2", "cam3")
    np.testing.assert_allclose(rig.move(there, "cam3", "cam2"), points, atol=1e-9)
    np.testing.assert_allclose(rig.move(points, "cam2", "cam2"), points, atol=1e-9)
    # inv(extrinsics[v]) moves camera 1 into camera v (the MVOR viewer's rule)
    extrinsic_2 = np.asarray(mvor["cameras_info"]["camParams"]["extrinsics"][1]).reshape(4, 4)
    np.testing.assert_allclose(
        rig.move(points, "cam1", "cam2"), apply_rigid(np.linalg.inv(extrinsic_2), points), atol=1e-6
    )
    room = np.asarray(mvor["cameras_info"]["camParams"]["firstCamToRoomRef"]).reshape(4, 4)
    np.testing.assert_allclose(
        rig.to_room(there, "cam3"), apply_rigid(room, rig.move(points, "cam2", "cam1")), atol=1e-6
    )
    with pytest.raises(KeyError, match="cam9"):
        rig.move(points, "cam1", "cam9")


def test_3d_joints_0_to_9_are_the_2d_joints_and_the_distortion_order_is_k1_k2_k3_p1_p2(mvor):
    """The measurement behind frames.mvor's docstring and docs/mvor.md."""
    rig = read_mvor_rig(mvor)
    pinhole = reprojection_errors(mvor, rig, rig.intrinsics)
    medians = np.nanmedian(pinhole, axis=0)  # (12, 10)
    assert list(np.argmin(medians[:10], axis=1)) == list(range(10))  # 3D joint j lands on 2D joint j
    assert np.all(np.diag(medians[:10]) < 13.0) and np.all(medians[10:, [8, 9]].min(axis=1) < 20)  # 10, 11: hands
    diagonal = pinhole[:, np.arange(10), np.arange(10)]
    assert 7.5 < np.nanmedian(diagonal) < 8.5  # 8.1 px measured
    per_camera = {}
    for (_, image, _), errors in zip(views(mvor), diagonal):
        per_camera.setdefault(image["cam_id"], []).append(errors)
    for camera, errors in per_camera.items():
        assert 7.0 < np.nanmedian(np.concatenate(errors)) < 10.0, camera  # 7.7 / 8.9 / 7.9 px

    def with_distortion(order):
        intrinsics = {}
        for index, serial in enumerate(mvor["cameras_info"]["camParams"]["ids"]):
            camera = f"cam{mvor['dataset_info']['camid_2_num'][serial]}"
            coefficients = mvor["cameras_info"]["camParams"]["intrinsics"][index]["distortion"]
            intrinsics[camera] = Intrinsics(
                **{**rig.intrinsics[camera].__dict__, "distortion": tuple(order(coefficients))}
            )
        errors = reprojection_errors(mvor, rig, intrinsics)
        return np.nanmedian(errors[:, np.arange(10), np.arange(10)])

    as_opencv = with_distortion(lambda c: c)  # (k1, k2, p1, p2, k3)
    as_mvor = with_distortion(mvor_distortion_to_opencv)  # (k1, k2, k3, p1, p2)
    assert as_opencv > 100  # 366 px: not this order
    assert np.nanmedian(diagonal) < as_mvor < 10  # 8.9 px: plausible, yet the pinhole fits the annotations better
    distorted = read_mvor_rig(mvor, distortion=True).intrinsics["cam1"].distortion
    assert distorted == tuple(
        mvor_distortion_to_opencv(mvor["cameras_info"]["camParams"]["intrinsics"][0]["distortion"])
    )


def test_check_frames_accepts_an_mvor_tree_with_the_real_annotation_file(mvor_files, tmp_path, capsys):
    from orpose.pipeline.cli import main

    root = tmp_path / "MVOR"
    for camera in (1, 2, 3):
        for kind, image in (
            ("color", np.full((480, 640, 3), 90, np.uint8)),
            ("depth", np.full((480, 640), 2500, np.uint16)),
        ):
            folder = root / "day1" / f"cam{camera}" / kind
            folder.mkdir(parents=True)
            for stem in ("000000", "000001"):
                cv2.imwrite(str(folder / f"{stem}.png"), image)
    (root / "camma_mvor_2018.json").write_bytes((mvor_files / "camma_mvor_2018.json").read_bytes())
    source = open_source(root, depth_unit_mm=1.0)
    assert isinstance(source, MvorTreeSource)
    assert [r.frame_id for r in source.refs()][:2] == ["day1/cam1/000000", "day1/cam1/000001"]
    assert source.calibrations()["day1/cam2"].color.fx == 534.8386
    assert main(["check-frames", str(root), "--depth-unit-mm", "1"]) == 0
    out = capsys.readouterr().out
    assert "6 frames, 6 good, 0 rejected" in out and "day1/cam3: 2 good frames, 640x480, registered depth" in out


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda d: d["cameras_info"]["camParams"]["ids"].pop(), "cameras_info.camParams.ids"),
        (lambda d: d["dataset_info"]["camid_2_num"].pop("1208130014"), "dataset_info.camid_2_num"),
        (
            lambda d: d["cameras_info"]["camParams"]["intrinsics"][1].update(focallength=[534.8]),
            "cameras_info.camParams.intrinsics[1].focallength",
        ),
        (
            lambda d: d["cameras_info"]["camParams"]["intrinsics"][2].update(distortion=[0.1, 0.2]),
            "cameras_info.camParams.intrinsics[2].distortion",
        ),
        (
            lambda d: d["cameras_info"]["camParams"]["extrinsics"][2].__setitem__(0, 3.0),
            "cameras_info.camParams.extrinsics[2]",
        ),
        (
            lambda d: d["cameras_info"]["camParams"]["intrinsics"][0].update(serialnumber="3210-999"),
            "cameras_info.camParams.intrinsics[0].serialnumber",
        ),
    ],
)
def test_a_broken_camera_block_is_refused_naming_the_file_and_the_field(mvor, tmp_path, change, field):
    document = copy.deepcopy(mvor)
    change(document)
    path = tmp_path / "camma_mvor_2018.json"
    path.write_text(json.dumps(document))
    with pytest.raises(CalibrationError) as error:
        read_mvor_calibrations(path, depth_unit_mm=1.0)
    assert field in str(error.value) and str(path) in str(error.value)


def test_legacy_layouts_have_no_rig(tmp_path):
    path = Path(tmp_path) / "legacy.json"
    cam = {"focallength": [30.0, 30.0], "principalpoint": [15.5, 11.5], "image_size": [32, 24], "depth_unit_mm": 1.0}
    path.write_text(json.dumps({"cameras_info": {"cam1": cam}}))
    assert list(read_mvor_calibrations(path)) == ["cam1"]
    with pytest.raises(CalibrationError, match="extrinsics"):
        read_mvor_rig(path)


def test_mvor_calibrations_carry_each_camera_s_pose_and_make_the_same_rig(mvor_files):
    """read_mvor_calibrations gives every camera its pose in the room, and the rig made from those calibrations
    (what a calibration.json holds) moves points as the MVOR file's own rig does."""
    from orpose.frames.calibration import rig_from_calibration

    path = mvor_files / "camma_mvor_2018.json"
    calibrations = read_mvor_calibrations(path, depth_unit_mm=1.0)
    rig, expected = rig_from_calibration(calibrations), read_mvor_rig(path)
    points = np.array([[100.0, -200.0, 2500.0], [0.0, 0.0, 1000.0]])
    for source, target in (("cam1", "cam2"), ("cam2", "cam3"), ("cam3", "cam1")):
        np.testing.assert_allclose(rig.move(points, source, target), expected.move(points, source, target), atol=1e-6)
        np.testing.assert_allclose(rig.to_room(points, source), expected.to_room(points, source), atol=1e-6)


def test_an_mvor_tree_names_the_file_s_instants_and_the_plan_groups_them(mvor, mvor_files, tmp_path):
    """Every image of the real file as an (empty) file of a tree: the tree's instant keys (day and frame number)
    put exactly the three images of each of MVOR's 732 multi-view instants together in the plan."""
    from orpose.label_store.plan import write_plan

    for image in mvor["images"]:
        path = tmp_path / "tree" / image["file_name"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    source = MvorTreeSource(tmp_path / "tree", mvor_files / "camma_mvor_2018.json", depth_unit_mm=1.0)
    plan = write_plan(tmp_path / "run", source.iter_ref_batches(), 3, None, "mvor", instant_tolerance_s=1 / 60)
    rows = {}
    for batch in plan.iter_batches(["frame_id", "instant", "shard_index"]):
        for frame_id, instant, shard in zip(*(column.to_pylist() for column in batch.columns)):
            rows[frame_id] = (instant, shard)
    assert len(rows) == 2196 and plan.num_shards == 732
    for group in mvor["multiview_images"]:
        ids = {image["file_name"].replace("/color/", "/").removesuffix(".png") for image in group["images"]}
        assert len({rows[i] for i in ids}) == 1  # one instant, one shard
