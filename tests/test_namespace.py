"""One import name (issue 32): a student's repository has its own `configs/`, `training/`, `evaluation/`,
`frames/` and `joints/`; with those first on `sys.path`, a student script still imports our reader and
iterates a run, and its own packages stay its own. `import orpose` alone loads no heavy package."""

import json
import subprocess
import sys
import textwrap

import pytest

STUDENT_PACKAGES = ("configs", "training", "evaluation", "frames", "joints")

STUDENT_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import configs, training, evaluation, frames, joints  # the student's own, first on sys.path
    import orpose
    light = sorted(name for name in ("torch", "ray", "mmdet", "mmpose", "mmcv") if name in sys.modules)
    from orpose import LabelRun, PoseLabelDataset
    run = LabelRun(sys.argv[1])
    frame_ids = [frame.frame_id for frame in run]
    item = PoseLabelDataset(run)[0]
    print(json.dumps({
        "student": {name: getattr(sys.modules[name], "OWNER", None) for name in %r},
        "heavy_after_import_orpose": light,
        "frames": len(frame_ids),
        "labelled": sum(run.get(f).labelled for f in frame_ids),
        "item_keys": sorted(item),
        "reader_file": sys.modules["orpose.label_store.reader"].__file__,
    }))
    """
    % (STUDENT_PACKAGES,)
)


def test_a_student_script_with_clashing_packages_reads_a_run(tmp_path, sample_run):
    for name in STUDENT_PACKAGES:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text('OWNER = "student"\n')
    script = tmp_path / "train.py"
    script.write_text(STUDENT_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), str(sample_run)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["student"] == {name: "student" for name in STUDENT_PACKAGES}
    assert seen["heavy_after_import_orpose"] == []
    assert seen["frames"] == 8 and 0 < seen["labelled"] <= 8
    assert {"image", "keypoints", "boxes", "hard_mask"} <= set(seen["item_keys"]), seen["item_keys"]
    assert str(tmp_path) not in seen["reader_file"]


def test_the_installed_names_are_one_namespace():
    """The wheel's packages are `orpose` and its subpackages, each mapped to a folder of the repository
    that exists; every package folder of the repository but tests/ is among them."""
    tomllib = pytest.importorskip("tomllib")
    from pathlib import Path

    root = Path(__file__).parents[1]
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages, folders = setuptools["packages"], setuptools["package-dir"]
    assert all(name == "orpose" or name.startswith("orpose.") for name in packages)
    assert set(folders) == set(packages)
    assert all((root / folder / "__init__.py").is_file() for folder in folders.values())
    package_folders = {p.name for p in root.iterdir() if (p / "__init__.py").is_file()} - {"tests"}
    assert package_folders == set(folders.values())
