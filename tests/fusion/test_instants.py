"""Instants from timestamps (fusion.instants): known answers, and the generator's own grouping of its views."""

import json
from pathlib import Path

import numpy as np
import pytest

from orpose.fusion.instants import DEFAULT_TOLERANCE_S, group_instants

SAMPLE = Path(__file__).parents[2] / "data" / "sample"


def test_jittered_views_of_one_moment_form_one_instant_and_moments_stay_apart():
    """Three cameras at 30 fps, each view up to 6 ms off its moment; one view of moment 2 is missing."""
    rng = np.random.default_rng(0)
    times, cameras, moments = [], [], []
    for moment in range(4):
        for camera in ("cam1", "cam2", "cam3"):
            if (moment, camera) == (2, "cam3"):
                continue
            times.append(moment / 30 + rng.uniform(-0.006, 0.006))
            cameras.append(camera)
            moments.append(moment)
    instants = group_instants(times, cameras)
    assert instants.tolist() == moments  # numbered in time order, the missing view leaves a 2-view instant


def test_a_camera_appears_once_an_instant_and_the_first_frame_anchors_it():
    # cam1 twice within the tolerance: its second frame starts the next instant
    assert group_instants([0.0, 0.004, 0.008], ["cam1", "cam2", "cam1"], 0.01).tolist() == [0, 0, 1]
    # a chain of frames each 8 ms after the last: within 10 ms of its neighbour, not of the instant's first
    assert group_instants([0.0, 0.008, 0.016, 0.024], ["a", "b", "c", "d"], 0.01).tolist() == [0, 0, 1, 1]


def test_the_grouping_does_not_depend_on_the_frames_order():
    times = np.array([0.0, 0.1, 0.001, 0.102, 0.2, 0.199])
    cameras = np.array(["a", "a", "b", "b", "a", "b"], dtype=object)
    expected = group_instants(times, cameras)
    order = np.random.default_rng(1).permutation(len(times))
    np.testing.assert_array_equal(group_instants(times[order], cameras[order]), expected[order])
    assert expected.tolist() == [0, 1, 0, 1, 2, 2]


def test_frames_without_a_timestamp_are_instants_of_their_own_and_bad_input_is_refused():
    assert group_instants([0.0, np.nan, 0.001, np.nan], ["a", "a", "b", "b"]).tolist() == [0, 1, 0, 2]
    with pytest.raises(ValueError, match="one length"):
        group_instants([0.0, 1.0], ["a"])
    with pytest.raises(ValueError, match="tolerance"):
        group_instants([0.0], ["a"], -1.0)


def test_the_sample_s_manifest_timestamps_give_the_generators_multiview_groups():
    """The bundled sample (2 cameras, 4 moments): its manifest's timestamps grouped with the default tolerance
    are the instants its annotations list (`multiview_images`)."""
    entries = [json.loads(line) for line in (SAMPLE / "manifest.jsonl").read_text().splitlines()]
    instants = group_instants([e["timestamp"] for e in entries], [e["camera"] for e in entries], DEFAULT_TOLERANCE_S)
    found = {frozenset(e["frame_id"] for e, i in zip(entries, instants) if i == k) for k in set(instants.tolist())}
    gt = json.loads((SAMPLE / "annotations.json").read_text())
    frame_of = {im["id"]: im["frame_id"] for im in gt["images"]}
    listed = {frozenset(frame_of[i] for i in group["image_ids"]) for group in gt["multiview_images"]}
    assert found == listed and len(listed) == 4 and all(len(group) == 2 for group in listed)


def test_instant_keys_decide_where_a_source_names_them():
    """MVOR's case: the views of one instant up to 64 ms apart, the next instant 34 ms later: the default tolerance
    splits them by time, the keys do not. Instants are numbered by their earliest frame, then by key."""
    times = [0.000, 0.064, 0.030, 0.034, 0.070, 0.098, np.nan]
    cameras = ["c1", "c2", "c3", "c1", "c2", "c3", "c1"]
    keys = ["d1/1", "d1/1", "d1/1", "d1/2", "d1/2", "d1/2", "d1/0"]
    assert group_instants(times, cameras, instant_keys=keys).tolist() == [0, 0, 0, 1, 1, 1, 2]
    assert group_instants(times, cameras).tolist() != [0, 0, 0, 1, 1, 1, 2]  # by time: mixed up
    assert group_instants(times, cameras, instant_keys=[""] * 7).tolist() == group_instants(times, cameras).tolist()
    with pytest.raises(ValueError, match="instant 'k' holds two frames of camera 'c1'"):
        group_instants([0.0, 0.0], ["c1", "c1"], instant_keys=["k", "k"])
    with pytest.raises(ValueError, match="frame 1 .* has no instant key"):
        group_instants([0.0, 0.0], ["c1", "c2"], instant_keys=["k", ""])
