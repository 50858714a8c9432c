"""Absolute keypoint positions through the real crop, flip, multi-scale alignment and decoding.

The network is replaced by a perfect one: it finds a bright blob in each crop it is given and
answers with mmpose's own training target for a keypoint there (MSRAHeatmap.encode). The blob is
drawn at a known frame pixel, so the decoded keypoint must come back to that pixel, whatever the
box's aspect ratio, scale or place. Checked by breaking the code on purpose: a flipped view's
affine off by one pixel fails every case, a heatmap scale 2 % off fails four of five; mirror
symmetry alone saw neither. (A crop centre off by half a pixel moves no keypoint: the same affine
that cuts the crop maps the heatmaps back.)"""

import dataclasses

import numpy as np
import pytest
import torch

from orpose.configs.schema import CONFIG_DIR, load_teacher_config
from orpose.teachers.keypoints import TopDownKeypoints


@pytest.fixture(scope="module")
def keypoints_model(tiny_weights):
    config = load_teacher_config("tiny", {"device": "cpu"})
    spec = dataclasses.replace(config.keypoints, box_scales=(1.0, 1.25), flip=True, crops_per_forward=3)
    return TopDownKeypoints(spec, tiny_weights / spec.checkpoint, torch.device("cpu"), CONFIG_DIR)


def perfect_network(model: TopDownKeypoints):
    from mmpose.codecs import MSRAHeatmap

    # unbiased: the Gaussian centred at the exact sub-pixel place (the default rounds it to a heatmap pixel)
    codec = MSRAHeatmap(input_size=model.input_size, heatmap_size=model.heatmap_size, sigma=2.0, unbiased=True)

    def forward(crops: np.ndarray) -> torch.Tensor:
        maps = []
        for crop in crops:
            weight = crop[..., 1].astype(np.float64)  # the blob is green, the frame black
            ys, xs = np.mgrid[: weight.shape[0], : weight.shape[1]]
            at = np.array([(weight * xs).sum(), (weight * ys).sum()]) / weight.sum()
            heatmap = codec.encode(np.tile(at, (1, 17, 1)))["heatmaps"]
            maps.append(heatmap)
        model.forward_passes += 1
        return torch.from_numpy(np.array(maps, dtype=np.float32))

    return forward


def frame_with_blob(at, size=(640, 480), sigma=2.5) -> np.ndarray:
    ys, xs = np.mgrid[: size[1], : size[0]]
    blob = np.exp(-((xs - at[0]) ** 2 + (ys - at[1]) ** 2) / (2 * sigma**2))
    image = np.zeros((size[1], size[0], 3), np.uint8)
    image[..., 1] = np.round(255 * blob).astype(np.uint8)
    return image


@pytest.mark.parametrize(
    "box, at",
    [
        ((200.0, 100.0, 300.0, 400.0), (251.3, 180.7)),  # tall box, point above its centre
        ((100.0, 200.0, 500.0, 300.0), (180.2, 262.9)),  # wide box, point left of centre
        ((320.0, 240.0, 380.0, 300.0), (365.5, 251.0)),  # small square box
        ((10.5, 30.25, 150.75, 470.0), (40.0, 420.0)),  # fractional box near the frame's edge, point near a corner
    ],
)
def test_a_keypoint_at_a_known_pixel_comes_back_to_that_pixel(keypoints_model, monkeypatch, box, at):
    monkeypatch.setattr(keypoints_model, "_forward", perfect_network(keypoints_model))
    result = keypoints_model([frame_with_blob(at)], [np.array([box])])[0]
    # DARK finds a Gaussian's centre to ~1/100 of a heatmap pixel; in frame pixels that grows with
    # the crop (a half-pixel convention error would be 0.125 heatmap pixel: 6 x this bound)
    in_w, in_h = keypoints_model.input_size
    w, h = (box[2] - box[0]) * 1.25, (box[3] - box[1]) * 1.25
    frame_px_per_heatmap_px = max(w, h * in_w / in_h) * 1.25 / keypoints_model.heatmap_size[0]
    tolerance = 0.02 * frame_px_per_heatmap_px
    np.testing.assert_allclose(result.keypoints[0, :, :2], np.tile(at, (17, 1)), atol=tolerance)
    assert result.spread[0].max() < tolerance  # the four views (two scales, plain and flipped) agree
    assert keypoints_model.forward_passes > 0


def test_several_frames_and_persons_in_one_call_each_get_their_own_keypoints(keypoints_model, monkeypatch):
    monkeypatch.setattr(keypoints_model, "_forward", perfect_network(keypoints_model))
    frames = [frame_with_blob((150.0, 150.0)), frame_with_blob((500.0, 300.0))]
    boxes = [np.array([[100.0, 50.0, 200.0, 350.0]]), np.array([[430.0, 200.0, 560.0, 420.0]])]
    out = keypoints_model(frames, boxes)
    np.testing.assert_allclose(out[0].keypoints[0, 0, :2], (150.0, 150.0), atol=0.25)
    np.testing.assert_allclose(out[1].keypoints[0, 0, :2], (500.0, 300.0), atol=0.25)


def test_a_compiled_model_gets_full_batches_and_each_crop_its_own_heatmaps(keypoints_model, monkeypatch):
    """With `compile` every forward gets crops_per_forward crops (the last batch padded, one graph for every person
    count); the padding is dropped and each real crop's heatmaps are those of an unpadded forward."""
    seen = []
    model = keypoints_model.heatmaps

    def recording(x):
        seen.append(x.shape[0])
        return model(x)

    crops = np.random.default_rng(3).integers(0, 255, (2, *keypoints_model.input_size[::-1], 3), dtype=np.uint8)
    plain = keypoints_model._forward(crops)
    monkeypatch.setattr(keypoints_model, "compile", True)
    monkeypatch.setattr(keypoints_model, "heatmaps", recording)
    padded = keypoints_model._forward(crops)
    assert seen == [keypoints_model.spec.crops_per_forward] and padded.shape == plain.shape
    torch.testing.assert_close(padded, plain, rtol=1e-4, atol=1e-5)
