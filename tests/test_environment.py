"""The installed stack is the one its constraints file pins (pinned or modern, see tools/setup_env.sh),
and the compiled parts work."""

import re
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parents[1]


def stack() -> str:
    """The stack this environment was made for: tools/setup_env.sh writes it into the venv."""
    marker = Path(sys.prefix) / "stack"
    return marker.read_text().strip() if marker.exists() else "pinned"


CONSTRAINTS = ROOT / {"pinned": "constraints.txt", "modern": "constraints-modern.txt"}[stack()]


def pins() -> dict[str, str]:
    found = {}
    for line in CONSTRAINTS.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s#;]+)", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


@pytest.mark.parametrize(
    "package", ["torch", "torchvision", "mmengine", "mmdet", "mmpose", "numpy", "ray", "h5py", "pycocotools"]
)
def test_installed_versions_match_the_constraints(package):
    pinned = pins()[package]
    assert version(package).split("+")[0] == pinned, (
        f"{package} {version(package)} is installed, {CONSTRAINTS.name} pins {pinned}"
    )


def test_python_numpy_and_xtcocotools_of_the_stack():
    """pinned: Python 3.11 and numpy 1, for xtcocotools' published binary (built against numpy 1:
    "numpy.dtype size changed" under numpy 2). modern: Python 3.12 and numpy 2, with xtcocotools
    built from source against it."""
    expected = {"pinned": ((3, 11), "1."), "modern": ((3, 12), "2.")}[stack()]
    assert sys.version_info[:2] == expected[0]
    assert np.__version__.startswith(expected[1])
    import xtcocotools.coco  # noqa: F401


def test_mmcv_is_one_of_its_two_builds_at_the_pinned_version():
    """mmcv-lite (the default: no compiled ops, teachers/mmcv_ext.py provides them on torchvision) or compiled
    mmcv (`make setup MMCV=full`), never both: they install the same files."""
    from importlib.metadata import PackageNotFoundError

    from orpose.teachers.mmcv_ext import compiled_mmcv, provided

    installed = {}
    for name in ("mmcv-lite", "mmcv"):
        try:
            installed[name] = version(name)
        except PackageNotFoundError:
            pass
    assert len(installed) == 1, f"both or neither of mmcv-lite and mmcv are installed: {installed}"
    ((name, found),) = installed.items()
    assert found == pins()[name]
    assert (name == "mmcv") == compiled_mmcv() and (name == "mmcv-lite") == provided()


def test_mmcv_ops_give_known_answers():
    import torch

    import orpose.teachers  # noqa: F401  (first: mmcv's extension where mmcv-lite is installed)

    # isort: split
    from mmcv.ops import nms, roi_align

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7])
    _, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]  # box 1 overlaps box 0 with IoU 0.68
    feature = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    rois = torch.tensor([[0, 0.0, 0.0, 4.0, 4.0]])
    pooled = roi_align(feature, rois, (1, 1), 1.0, 2, "avg", True)  # positional: an autograd Function
    assert pooled.item() == pytest.approx(feature.mean().item())


def test_openmmlab_ray_h5py_import():
    import orpose.teachers  # noqa: F401  (first: mmcv's extension where mmcv-lite is installed)

    # isort: split
    import h5py
    import mmdet
    import mmpose
    import ray

    assert mmdet.__version__ == pins()["mmdet"] and mmpose.__version__ == pins()["mmpose"]
    assert ray.__version__ == pins()["ray"] and h5py.version.hdf5_version


def test_every_package_imports_from_outside_the_repository(tmp_path):
    """pytest puts the repository on sys.path; a user's shell does not. The install must, under one name."""
    import subprocess
    import sys

    packages = [
        "pipeline",
        "stages",
        "teachers",
        "label_store",
        "configs",
        "frames",
        "synth",
        "joints",
        "evaluation",
        "visualize",
        "training",
    ]
    names = ", ".join(f"orpose.{p}" for p in packages)
    result = subprocess.run(
        [sys.executable, "-c", f"import {names}; import orpose.pipeline.executors, orpose.pipeline.cli"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
