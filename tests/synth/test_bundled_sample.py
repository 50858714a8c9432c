"""The bundled sample (data/sample) is what `make sample` renders today, on any x86-64 machine.

The comparison is of data, not bytes (tests/synth/sample_compare.py): another CPU's float
arithmetic may move a pixel by a level or a number in its last printed digit, and that must not
fail a fresh clone; any real change of the generator must. If the generator changes on purpose,
refresh the sample with `make sample` and commit it.
"""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from orpose.synth.generate import SynthSettings, canonical, generate
from tests.synth.sample_compare import dataset_differences

SAMPLE = Path(__file__).parents[2] / "data" / "sample"


@pytest.fixture(scope="module")
def fresh_render(tmp_path_factory) -> Path:
    recorded = json.loads((SAMPLE / "synth.json").read_text())
    recorded.pop("generator_version")
    out = tmp_path_factory.mktemp("render")
    generate(out, SynthSettings(**recorded), progress=False)
    return out


def test_bundled_sample_matches_a_fresh_render(fresh_render):
    differences = dataset_differences(fresh_render, SAMPLE)
    assert not differences, "data/sample is stale: run `make sample` and commit it\n" + "\n".join(differences[:20])


def test_bundled_sample_is_small_and_multi_person():
    size = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert size < 5 * 2**20
    gt = json.loads((SAMPLE / "annotations.json").read_text())
    assert len(gt["images"]) == 8 and len(gt["annotations"]) >= 10


def test_written_numbers_are_canonical_no_negative_zero_no_noise_digits():
    assert canonical([-0.0, -1e-9, 0.12345678, -2.0004999], 3) == [0.0, 0.0, 0.123, -2.0]
    assert all(str(v) != "-0.0" for v in canonical(np.array([[-0.0, 1e-12], [-3e-7, 5.0]]), 6))
    for name in ("annotations.json", "calibration.json", "calibrated_rig/calibration.json"):
        text = (SAMPLE / name).read_text()
        assert "-0.0," not in text and "-0.0]" not in text and "-0.0\n" not in text, name


def copy_of(folder: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    return copy


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_the_comparison_forgives_float_noise(fresh_render, tmp_path):
    copy = copy_of(fresh_render, tmp_path)

    def noise(gt):
        gt["annotations"][0]["keypoints"][0] += 0.001  # the last printed digit
        gt["annotations"][0]["keypoints_3d"][2] -= 0.001
        gt["cameras_info"]["camParams"]["extrinsics"][0][1] = -0.0  # a signed zero

    edit_json(copy / "annotations.json", noise)
    image = cv2.imread(str(copy / "day1/cam1/color/000001.png"))
    image[10, 10] = 255 - image[10, 10]  # one pixel flipped at an "edge"
    image[20:30, 20] = np.clip(image[20:30, 20].astype(int) + 1, 0, 255).astype(np.uint8)  # off by one level
    cv2.imwrite(str(copy / "day1/cam1/color/000001.png"), image)
    assert dataset_differences(fresh_render, copy) == []


@pytest.mark.parametrize(
    "change", ["keypoint_1px", "visibility", "new_field", "image_shifted", "depth_5mm", "mask", "missing_file"]
)
def test_the_comparison_fails_on_a_real_change(fresh_render, tmp_path, change):
    copy = copy_of(fresh_render, tmp_path)
    gt_path = copy / "annotations.json"
    if change == "keypoint_1px":
        edit_json(
            gt_path,
            lambda gt: gt["annotations"][0]["keypoints"].__setitem__(0, gt["annotations"][0]["keypoints"][0] + 1),
        )
    elif change == "visibility":
        edit_json(
            gt_path,
            lambda gt: gt["annotations"][0]["keypoints"].__setitem__(2, 3 - gt["annotations"][0]["keypoints"][2]),
        )
    elif change == "new_field":
        edit_json(gt_path, lambda gt: gt["images"][0].update(extra=1))
    elif change == "image_shifted":
        path = copy / "day1/cam1/color/000001.png"
        cv2.imwrite(str(path), np.roll(cv2.imread(str(path)), 2, axis=1))
    elif change == "depth_5mm":
        path = copy / "day1/cam1/depth/000001.png"
        depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(path), np.where(depth > 0, depth + 5, 0).astype(np.uint16))
    elif change == "mask":
        from pycocotools import mask as mask_utils

        def grow(gt):
            segmentation = gt["annotations"][0]["segmentation"]
            mask = mask_utils.decode(segmentation)
            mask = np.asfortranarray(cv2.dilate(mask, np.ones((5, 5), np.uint8)))
            segmentation["counts"] = mask_utils.encode(mask)["counts"].decode("ascii")

        edit_json(gt_path, grow)
    elif change == "missing_file":
        (copy / "day1/cam1/depth/000001.png").unlink()
    assert dataset_differences(fresh_render, copy), change
