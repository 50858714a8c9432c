"""Perspective-correct person crops (issue 34, seed 004's recipe): the homography's algebra as a known answer,
and on real labels, the camera-frame pose projecting onto the crop's keypoints."""

import numpy as np
import pytest

from orpose.label_store.crops import PersonCropDataset, crop_geometry, look_at_rotation


def project(k: np.ndarray, points: np.ndarray) -> np.ndarray:
    uvw = points @ k.T
    return uvw[..., :2] / uvw[..., 2:]


def test_the_virtual_camera_looks_through_the_box_centre_and_h_equals_the_rotated_projection():
    k = np.array([[520.0, 0.0, 318.2], [0.0, 515.0, 242.7], [0.0, 0.0, 1.0]])
    box = np.array([500.0, 40.0, 620.0, 300.0])  # near the right border: a strongly oblique view
    r, k_crop, h = crop_geometry(k, box, size=257)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    u, v = (box[0] + box[2]) / 2 - 0.5, (box[1] + box[3]) / 2 - 0.5
    centre_ray = np.linalg.solve(k, [u, v, 1.0])
    np.testing.assert_allclose(project(k_crop, (r @ centre_ray)[None])[0], [128.0, 128.0], atol=1e-9)
    np.testing.assert_allclose(look_at_rotation(k, k[0, 2], k[1, 2]), np.eye(3), atol=1e-12)  # on axis: none
    points = np.random.default_rng(0).uniform([-900, -700, 1500], [900, 700, 5000], size=(40, 3))
    image = project(k, points)
    xyw = np.concatenate([image, np.ones((40, 1))], axis=1) @ h.T
    np.testing.assert_allclose(xyw[:, :2] / xyw[:, 2:], project(k_crop, points @ r.T), atol=1e-7)


def test_the_rotated_pose_projects_onto_the_crop_keypoints(trained_sample_run):
    crops = PersonCropDataset(trained_sample_run, size=257)
    assert len(crops) > 0
    crop_errors, image_errors = [], []
    for i in range(len(crops)):
        item = crops[i]
        assert item["color"].shape == (3, 257, 257) and item["depth"].shape == (1, 257, 257)
        pose = item["pose3d_camera"].double().numpy()
        keypoints = item["keypoints"].double().numpy()
        shared = shared_joints()
        seen = np.isfinite(pose[shared[0]]).all(axis=-1) & item["valid"].numpy()[shared[1]]
        projected = project(item["intrinsics"].double().numpy(), pose[shared[0]])
        crop_errors.append(np.linalg.norm(projected - keypoints[shared[1], :2], axis=-1)[seen])
        # the same in the original image, in units of the crop (its scale: K_crop's focal over the camera's)
        frame, persons = crops.source.read_frame(int(crops.entries[i][0]), "rgbd")
        k = crops.source.cameras_of(frame["camera_id"])[0].matrix()
        original = persons["pose3d_camera"][item["person"]][shared[0]]
        scale = item["intrinsics"][0, 0].item() / k[0, 0]
        in_image = np.linalg.norm(
            project(k, original) - persons["keypoints_2d"][item["person"]][shared[1], :2], axis=-1
        )
        image_errors.append((in_image * scale)[seen])
    crop_median, image_median = np.median(np.concatenate(crop_errors)), np.median(np.concatenate(image_errors))
    print(f"median error, crop px: {crop_median:.2f} in the crops, {image_median:.2f} in the image at the crop's scale")
    assert crop_median < 0.1 * 257
    assert crop_median == pytest.approx(image_median, rel=0.25)  # the crop keeps the geometry


def shared_joints() -> tuple[list[int], list[int]]:
    from orpose.joints import COCO_KEYPOINTS, H36M_JOINTS

    names = [name for name in H36M_JOINTS if name in COCO_KEYPOINTS]
    return [H36M_JOINTS.index(n) for n in names], [COCO_KEYPOINTS.index(n) for n in names]
