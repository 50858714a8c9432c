"""The student-facing reader: exact coordinates at every resolution, both modalities, COCO export."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from orpose.frames.calibration import CameraCalibration, Intrinsics
from orpose.frames.sources import Frame, FrameRef
from orpose.label_store.dataset import PoseLabelDataset, draw_factor, scale_boxes, scale_keypoints, scaled_size
from orpose.label_store.export import export_coco
from orpose.label_store.reader import LabelRun
from orpose.label_store.shard import commit_shard
from orpose.stages.label_sets import hard_keypoints
from orpose.stages.records import encode_masks, labelled_record


def test_scaling_known_answers():
    assert (
        scaled_size(640, 480, 8) == (80, 60)
        and scaled_size(640, 480, 10) == (64, 48)
        and scaled_size(640, 480, 12) == (53, 40)
    )
    np.testing.assert_allclose(scale_keypoints(np.array([[3.5, 7.5]]), 0.5, 0.5), [[1.5, 3.5]])  # centre of a 2x2 block
    np.testing.assert_allclose(scale_boxes(np.array([[8, 16, 24, 32]]), 0.125, 0.125), [[1, 2, 3, 4]])


def test_random_factor_follows_seed_000s_schedule():
    rng = np.random.default_rng(0)
    factors = np.array([draw_factor(rng) for _ in range(20000)])
    assert np.mean(factors == 1.0) == pytest.approx(0.30, abs=0.015)
    assert np.mean((factors >= 2) & (factors < 8)) == pytest.approx(0.35, abs=0.015)
    assert np.mean(factors >= 8) == pytest.approx(0.35, abs=0.015) and factors.max() <= 12


@pytest.fixture(scope="module")
def blob_run(tmp_path_factory, provenance):
    """One frame whose color and depth images hold a Gaussian blob exactly at a labelled keypoint."""
    folder = tmp_path_factory.mktemp("blob")
    w, h = 640, 480
    point = np.array([301.3, 187.6])
    ys, xs = np.mgrid[0:h, 0:w]
    blob = np.exp(-((xs - point[0]) ** 2 + (ys - point[1]) ** 2) / (2 * 24.0**2))
    color = np.repeat((blob * 250)[..., None], 3, axis=2).astype(np.uint8)
    depth = (1000 + blob * 3000).astype(np.uint16)
    cv2.imwrite(str(folder / "c.png"), color)
    cv2.imwrite(str(folder / "d.png"), depth)
    intr = Intrinsics(w, h, 500.0, 500.0, 319.5, 239.5)
    calib = CameraCalibration("cam", intr, None, True, None, 1.0)
    ref = FrameRef("blob", "cam", str(folder / "c.png"), str(folder / "d.png"))
    frame = Frame(ref, color, depth, calib)
    keypoints = np.zeros((1, 17, 3))
    keypoints[0, :, :2] = point
    keypoints[0, :, 2] = 0.9
    box = np.array([[point[0] - 50, point[1] - 80, point[0] + 50, point[1] + 80]])
    pose = np.zeros((1, 17, 3))
    hard_mask, hard_valid = hard_keypoints(keypoints, 0.35, 4)
    record = labelled_record(
        ref,
        calib,
        frame.depth_mm(),
        boxes=box,
        scores=np.array([0.95]),
        mask_rle=encode_masks(np.zeros((1, h, w), bool)),
        keypoints=keypoints,
        spread=np.zeros((1, 17)),
        hard_mask=hard_mask,
        hard_valid=hard_valid,
        pose_soft=pose,
        pose_hard=pose,
    )
    commit_shard(folder / "run", 0, [record], provenance)
    return LabelRun(folder / "run"), point


def centroid(image: np.ndarray) -> np.ndarray:
    weights = image - image.min()
    weights = np.where(weights > 0.5 * weights.max(), weights, 0)
    ys, xs = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    return np.array([(xs * weights).sum(), (ys * weights).sum()]) / weights.sum()


@pytest.mark.parametrize("factor", [1, 8, 10, 12, 3.7])
@pytest.mark.parametrize("modality", ["color", "depth"])
def test_scaled_keypoints_sit_on_the_scaled_image_content(blob_run, factor, modality):
    run, point = blob_run
    item = PoseLabelDataset(run, modality=modality, factor=factor)[0]
    image = item["image"].numpy()
    assert image.shape[1:] == scaled_size(640, 480, factor)[::-1]
    found = centroid(image[0])
    # A wrong pixel convention is off by 0.5 * (1 - 1/factor) px, about 0.45 px here; centroiding a
    # blob on a 53x40 image has a few hundredths of a pixel of bias.
    np.testing.assert_allclose(item["keypoints"][0, 0, :2].numpy(), found, atol=0.1)
    new_w, new_h = scaled_size(640, 480, factor)
    scale = np.array([new_w / 640, new_h / 480] * 2)
    original = np.array([point[0] - 50, point[1] - 80, point[0] + 50, point[1] + 80])
    if modality == "color":
        np.testing.assert_allclose(item["boxes"][0].numpy(), original * scale, rtol=1e-6)
    if modality == "depth":
        assert image.max() <= 255 and item["depth_flag"].shape == (1, 17)


def test_random_factor_items_are_reproducible(blob_run):
    run, _ = blob_run
    a = PoseLabelDataset(run, factor="random", seed=3)[0]
    b = PoseLabelDataset(run, factor="random", seed=3)[0]
    assert a["factor"] == b["factor"] and a["image"].shape == b["image"].shape


def test_dataset_on_teacher_labels_and_a_dataloader(tmp_path, records, provenance):
    import torch

    commit_shard(tmp_path, 0, records, provenance)
    dataset = PoseLabelDataset(LabelRun(tmp_path), modality="depth", factor=8)
    assert len(dataset) == 3  # the rejected frame is not a training item
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=0)
    items = list(loader)
    assert items[0]["image"].shape == (1, 60, 80)
    assert items[0]["keypoints"].shape[1:] == (17, 3)


def test_export_coco_loads_in_pycocotools(tmp_path, records, provenance):
    from pycocotools.coco import COCO

    commit_shard(tmp_path / "run", 0, records, provenance)
    counts = export_coco(tmp_path / "run", tmp_path / "results.json")
    persons = sum(r.num_persons for r in records)
    assert counts == {"images": len(records), "results": persons}
    images = json.loads((tmp_path / "results.json.images.json").read_text())
    gt = COCO()
    gt.dataset = {**images, "annotations": []}
    gt.createIndex()
    detections = gt.loadRes(str(tmp_path / "results.json"))
    assert len(detections.getAnnIds()) == persons
    hard = export_coco(tmp_path / "run", tmp_path / "hard.json", label_set="hard")
    assert hard["results"] == sum(int(r.persons["hard_valid"].sum()) for r in records if r.num_persons)


def test_the_format_document_describes_every_field():

    from orpose.label_store.schema import FRAME_FIELDS, PERSON_FIELDS, PROVENANCE_KEYS

    doc = (Path(__file__).parents[2] / "docs" / "label_format.md").read_text()
    for f in FRAME_FIELDS + PERSON_FIELDS:
        assert f"| `{f.name}` |" in doc and f.doc in doc, f.name
    for key in PROVENANCE_KEYS:
        assert f"`{key}`" in doc


def test_scaled_intrinsics_project_as_the_scaled_keypoints():
    """Intrinsics scale with the factor: projecting with the item's K equals scaling the full-size projection."""
    from orpose.frames.calibration import Intrinsics
    from orpose.label_store.dataset import scaled_intrinsics

    intrinsics = Intrinsics(640, 480, 520.0, 515.0, 318.2, 242.7)
    points = np.random.default_rng(0).uniform([-800, -600, 1500], [800, 600, 5000], size=(50, 3))

    def project(k, xyz):
        uvw = xyz @ k.T
        return uvw[:, :2] / uvw[:, 2:]

    for factor in (1, 8, 10, 12, 3.7):
        sx, sy = (n / o for n, o in zip(scaled_size(640, 480, factor), (640, 480)))
        np.testing.assert_allclose(
            project(scaled_intrinsics(intrinsics, sx, sy), points),
            scale_keypoints(project(intrinsics.matrix(), points), sx, sy),
            atol=1e-9,
        )


def projection_errors(dataset) -> np.ndarray:
    """Pixel distances between pose3d_camera projected with the item's K and the item's 2D keypoints, over
    the joints both skeletons name (H36M-17 and COCO-17: shoulders, elbows, wrists, hips, knees, ankles)."""
    from orpose.joints import COCO_KEYPOINTS, H36M_JOINTS

    shared = [name for name in H36M_JOINTS if name in COCO_KEYPOINTS]
    h36m = [H36M_JOINTS.index(n) for n in shared]
    coco = [COCO_KEYPOINTS.index(n) for n in shared]
    errors = []
    for i in range(len(dataset)):
        item = dataset[i]
        k = item["intrinsics"].double().numpy()
        pose = item["pose3d_camera"].double().numpy()[:, h36m]
        seen = np.isfinite(pose).all(axis=-1)
        uvw = pose @ k.T
        projected = uvw[..., :2] / uvw[..., 2:]
        errors.append(np.linalg.norm(projected - item["keypoints"].double().numpy()[:, coco, :2], axis=-1)[seen])
    return np.concatenate(errors)


def test_the_camera_frame_pose_projects_onto_the_keypoints_at_every_factor(trained_sample_run):
    """pose3d_camera projected with each item's intrinsics lands near its 2D keypoints; the error in pixels
    shrinks with the image (the same geometry on a smaller grid)."""
    full = projection_errors(PoseLabelDataset(trained_sample_run, factor=1))
    small = projection_errors(PoseLabelDataset(trained_sample_run, factor=10))
    print(f"median projection error: {np.median(full):.1f} px at factor 1, {np.median(small):.2f} px at factor 10")
    assert len(full) > 50 and np.median(full) < 30.0
    np.testing.assert_allclose(np.median(small), np.median(full) / 10, rtol=0.1)


def test_rgbd_items_pair_color_and_depth_at_one_factor_with_their_own_targets(blob_run):
    run, _ = blob_run
    pair = PoseLabelDataset(run, modality="rgbd", factor=8)[0]
    color = PoseLabelDataset(run, modality="color", factor=8)[0]
    depth = PoseLabelDataset(run, modality="depth", factor=8)[0]
    assert torch.equal(pair["image"], color["image"]) and torch.equal(pair["keypoints"], color["keypoints"])
    assert torch.equal(pair["depth"], depth["image"]) and torch.equal(pair["depth_keypoints"], depth["keypoints"])
    assert torch.equal(pair["depth_boxes"], depth["boxes"]) and torch.equal(pair["depth_flag"], depth["depth_flag"])


def test_keep_full_and_upsample_give_the_full_size_image_beside_or_instead(blob_run):
    run, _ = blob_run
    full = PoseLabelDataset(run, modality="depth", factor=1)[0]
    kept = PoseLabelDataset(run, modality="depth", factor=10, keep_full=True)[0]
    assert kept["image"].shape == (1, 48, 64) and torch.equal(kept["image_full"], full["image"])
    back = PoseLabelDataset(run, modality="depth", factor=10, upsample=True)[0]
    assert back["image"].shape == full["image"].shape and torch.equal(back["keypoints"], full["keypoints"])
    difference = (back["image"] - full["image"]).abs()
    assert 0 < difference.mean() < 2.0  # degraded (details lost at 64x48), on the original grid


def test_items_of_a_multi_view_run_carry_the_fused_3d_in_their_camera_frame(fused_ground_truth_run):
    run = LabelRun(fused_ground_truth_run)
    dataset = PoseLabelDataset(run, factor=1)
    fused = 0
    for k in range(len(dataset)):
        item = dataset[k]
        persons = run.get(item["frame_id"]).persons
        np.testing.assert_array_equal(item["pose3d_room_camera"].numpy(), persons["pose3d_room_camera"])
        np.testing.assert_array_equal(item["pose3d_room_hard"].numpy(), persons["pose3d_room_hard"])
        fused += int(np.isfinite(persons["pose3d_room_camera"]).all(axis=2).any(axis=1).sum())
    assert fused > 0
