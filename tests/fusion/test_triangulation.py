"""Triangulation (issue 44), known answers: exact projections give the points back, the refinement lowers the
reprojection error of noisy ones, a view that disagrees is voted out, a joint seen once has no point; and on the
real MVOR file, its three views' 2D annotations triangulated with its calibration land on its 3D annotations."""

import json

import numpy as np
import pytest

from orpose.frames.calibration import Intrinsics
from orpose.frames.geometry import apply_rigid, look_at, project
from orpose.fusion.triangulation import (
    ViewCamera,
    camera_projections,
    normalized,
    reprojection_px,
    triangulate,
    triangulate_dlt,
)

INTRINSICS = Intrinsics(640, 480, 540.0, 540.0, 319.5, 239.5)


def rig(n: int = 3, distortion: tuple = ()) -> list[ViewCamera]:
    """n ceiling cameras around a room's centre, 2.5 m up, looking at a person's height."""
    cameras = []
    for k in range(n):
        angle = 2 * np.pi * k / n
        eye = [3000 * np.cos(angle), 3000 * np.sin(angle), 2500.0]
        intrinsics = Intrinsics(640, 480, 540.0, 540.0, 319.5, 239.5, distortion)
        cameras.append(ViewCamera(intrinsics, look_at(eye, [0.0, 0.0, 1000.0])))
    return cameras


def skeleton(seed: int = 0, joints: int = 17) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform([-400, -400, 100], [400, 400, 1800], size=(joints, 3))


def observe(points: np.ndarray, cameras) -> np.ndarray:
    return np.stack([project(apply_rigid(c.world_to_camera, points), c.intrinsics) for c in cameras])


@pytest.mark.parametrize("distortion", [(), (-0.12, 0.05, 0.001, -0.002, 0.0)])
def test_exact_projections_triangulate_to_the_points(distortion):
    cameras = rig(3, distortion)
    points = skeleton()
    uv = observe(points, cameras)
    result = triangulate(uv, np.ones(uv.shape[:2]), cameras)
    np.testing.assert_allclose(result.points, points, atol=1e-6)
    assert result.views.tolist() == [3] * 17 and np.nanmax(result.error_px) < 1e-6
    camera = apply_rigid(cameras[0].world_to_camera, points)  # distortion removed: back to x/z, y/z
    np.testing.assert_allclose(normalized(uv[0], cameras[0].intrinsics), camera[:, :2] / camera[:, 2:], atol=1e-6)


def test_the_refinement_lowers_the_reprojection_error_of_noisy_points():
    cameras = rig(4)
    points = skeleton(1)
    uv = observe(points, cameras) + np.random.default_rng(2).normal(0, 1.0, size=(4, 17, 2))
    weights = np.ones((4, 17))
    xn = np.stack([normalized(uv[v], c.intrinsics) for v, c in enumerate(cameras)])
    linear = triangulate_dlt(xn, weights, camera_projections(cameras))
    refined = triangulate(uv, weights, cameras).points
    before, after = reprojection_px(linear, uv, cameras), reprojection_px(refined, uv, cameras)
    assert (after**2).sum() < (before**2).sum()
    assert np.linalg.norm(refined - points, axis=1).max() < 15.0  # 1 px of noise at 3 m: millimetres


def test_a_view_that_disagrees_is_voted_out_and_a_joint_seen_once_has_no_point():
    cameras = rig(4)
    points = skeleton(3)
    uv = observe(points, cameras)
    uv[2, 5] += [60.0, -40.0]  # view 2 put joint 5 on something else
    confidence = np.ones((4, 17))
    confidence[1:, 9] = 0.0  # joint 9 seen by view 0 only
    result = triangulate(uv, confidence, cameras, outlier_px=20.0)
    assert not result.inliers[2, 5] and result.inliers[[0, 1, 3], 5].all()
    np.testing.assert_allclose(result.points[5], points[5], atol=1e-6)
    assert np.isnan(result.points[9]).all() and result.views[9] == 0 and np.isnan(result.error_px[9])
    plain = triangulate_dlt(
        np.stack([normalized(uv[v], c.intrinsics) for v, c in enumerate(cameras)]),
        np.ones((4, 17)), camera_projections(cameras),
    )  # fmt: skip
    assert np.linalg.norm(plain[5] - points[5]) > 20.0  # without the vote the outlier drags the joint


def test_a_zero_confidence_view_takes_no_part():
    cameras = rig(3)
    points = skeleton(4)
    uv = observe(points, cameras)
    uv[1] += 500.0  # nonsense, but its confidence is 0
    confidence = np.ones((3, 17))
    confidence[1] = 0.0
    result = triangulate(uv, confidence, cameras)
    np.testing.assert_allclose(result.points, points, atol=1e-6)
    assert result.views.tolist() == [2] * 17


def test_mvor_s_2d_annotations_triangulate_onto_its_3d_annotations(mvor_files):
    """The real rig and real annotations: each 3D pose of MVOR whose person is annotated in two or three views,
    its 10 2D joints triangulated with the file's calibration (pinhole: what the annotations follow), against
    its 3D joints 0-9 (camera 1's frame, mm)."""
    from orpose.frames.mvor import read_mvor_rig

    mvor = json.loads((mvor_files / "camma_mvor_2018.json").read_text())
    rig_ = read_mvor_rig(mvor)
    cameras = {c: ViewCamera(rig_.intrinsics[c], np.linalg.inv(rig_.camera_to_reference[c])) for c in rig_.intrinsics}
    images = {im["id"]: im for im in mvor["images"]}
    annotated = {(a["image_id"], a["person_id"]): a for a in mvor["annotations"] if not a["only_bbox"]}
    errors, by_views = [], {2: [], 3: []}
    for pose in mvor["annotations3D"]:
        truth = np.asarray(pose["keypoints3D"], np.float64).reshape(12, 4)[:10]
        seen = [(images[i], annotated[(i, pose["person_id"])]) for i in map(int, pose["image_ids"].split("_"))
                if (i, pose["person_id"]) in annotated]  # fmt: skip
        if len(seen) < 2:
            continue
        view_cameras = [cameras[f"cam{image['cam_id']}"] for image, _ in seen]
        keypoints = np.stack([np.asarray(a["keypoints"], np.float64).reshape(10, 3) for _, a in seen])
        result = triangulate(keypoints[..., :2], (keypoints[..., 2] > 0).astype(float), view_cameras, outlier_px=40)
        ok = np.isfinite(result.points).all(axis=1) & (truth[:, 3] > 0)
        distance = np.linalg.norm(result.points[ok] - truth[ok, :3], axis=1)
        errors.append(distance)
        by_views[len(seen)].append(distance)
    errors = np.concatenate(errors)
    print(f"MVOR: {len(errors)} joints, median {np.median(errors):.1f} mm, q90 {np.quantile(errors, 0.9):.1f} mm; "
          + ", ".join(f"{n} views: median {np.median(np.concatenate(d)):.1f} mm ({len(np.concatenate(d))} joints)"
                      for n, d in by_views.items() if d))  # fmt: skip
    assert len(errors) > 1000
    assert np.median(errors) < 80.0
