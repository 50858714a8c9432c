"""What a user installs works (issue 39). The sdist is built from a copy of this tree and the wheel from the
sdist (as `python -m build` does, so a file missing from either fails here), the wheel's file list is compared
with the repository's package folders, and the wheel is installed, not editable, into a clean virtual
environment, where `labels` labels frames made outside the repository and the run is read back.

The clean environment gets the project's dependencies from the development environment's site-packages
(added as a site directory, without the project's editable install, its finder or its `.pth`), so what is
tested is the wheel's own files and entry points, in seconds rather than a second download of torch. With
`FRESH_INSTALL=1` (`make check-install`) the clean environment is an empty venv into which pip installs the
wheel with its `teacher` extra and mmcv-lite against the stack's constraints file, as the README tells a user.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from orpose.pipeline.commands import COMMANDS as MODULES

ROOT = Path(__file__).parents[1]
COMMANDS = [module.replace("_", "-") for module in MODULES]  # `labels bench-feed` is commands/bench_feed.py
PACKAGE_LINKS = sorted(p.name for p in (ROOT / "orpose").iterdir() if p.is_symlink() and p.name != "data")
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv*", "build", "dist", "runs", "weights", ".whl", "__pycache__", "*.egg-info", ".pytest_cache"
)
# Where the development environment's own install of the project lives; none of it may reach the clean one.
PROJECT_ENTRIES = ("or_pose_labels", "__editable__", "orpose")
STACK_CONSTRAINTS = {"pinned": "constraints.txt", "modern": "constraints-modern.txt"}


def run(command: list[str], cwd: Path, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, command))}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """The sdist, built from a copy of the source tree, and the wheel built from that sdist."""
    work = tmp_path_factory.mktemp("build")
    source = work / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_SOURCE)
    started = time.perf_counter()
    build_sdist = "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    name = run([sys.executable, "-c", build_sdist, str(work / "dist")], cwd=source).stdout.strip().splitlines()[-1]
    sdist = work / "dist" / name
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    run([*pip_wheel, "-w", str(work / "dist"), str(sdist)], cwd=work)
    (wheel,) = (work / "dist").glob("*.whl")
    print(f"\nsdist and wheel built in {time.perf_counter() - started:.1f} s: {sdist.name}, {wheel.name}")
    return {"sdist": sdist, "wheel": wheel}


def repository_files(folder: str, pattern: str = "*.py") -> set[str]:
    return {
        str(path.relative_to(ROOT))
        for path in (ROOT / folder).rglob(pattern)
        if "__pycache__" not in path.parts and path.is_file()
    }


def test_the_wheel_holds_every_module_of_every_package_folder(built):
    names = set(zipfile.ZipFile(built["wheel"]).namelist())
    modules = {name for name in names if name.endswith(".py")}
    expected = {f"orpose/{path}" for folder in PACKAGE_LINKS for path in repository_files(folder)}
    expected |= {f"orpose/{path.name}" for path in (ROOT / "orpose").glob("*.py")}
    assert expected - modules == set(), "modules missing from the wheel"
    assert modules - expected == set(), "modules in the wheel that the repository does not have"
    assert "orpose/pipeline/commands/run.py" in modules  # the subpackage that once fell out
    # the files read as data: configs, the synthetic rig, the tiny teacher's checkpoints, the type marker
    data = {f"orpose/{path}" for path in repository_files("data/tiny_teacher", "*") if "sample" not in path}
    data |= {"orpose/py.typed", "orpose/synth/calibration.json", "orpose/configs/teachers/tiny.py"}
    assert data - names == set()
    assert {name.split("/")[0] for name in names} == {"orpose", built["wheel"].name.split("-")[0] + "-0.1.0.dist-info"}
    entry_points = zipfile.ZipFile(built["wheel"]).read(next(n for n in names if n.endswith("entry_points.txt")))
    assert "labels = orpose.pipeline.cli:main" in entry_points.decode()


def test_the_sdist_carries_the_source_folders_and_the_package_links_resolved(built):
    with tarfile.open(built["sdist"]) as sdist:
        members = {member.name.split("/", 1)[1]: member for member in sdist.getmembers() if "/" in member.name}
    assert "orpose/pipeline/commands/run.py" in members and members["orpose/pipeline/commands/run.py"].isfile()
    assert "orpose/data/tiny_teacher/tiny/tiny_hrnet.pth" in members
    assert "pyproject.toml" in members


def dependency_site(tmp: Path) -> Path:
    """The development environment's site-packages without the project's own install: a folder of links."""
    purelib = Path(sysconfig.get_paths()["purelib"])
    site = tmp / "dependencies"
    site.mkdir()
    for entry in purelib.iterdir():
        if not entry.name.startswith(PROJECT_ENTRIES):
            (site / entry.name).symlink_to(entry)
    return site


@pytest.fixture(scope="module")
def clean_env(built, tmp_path_factory) -> dict:
    """A new virtual environment with the wheel installed (not editable); its python, its bin and an environ
    with nothing of the repository (no PYTHONPATH, no ORPOSE_CHECKOUT, a working directory outside it)."""
    tmp = tmp_path_factory.mktemp("clean")
    venv = tmp / "venv"
    fresh = bool(os.environ.get("FRESH_INSTALL"))
    run([sys.executable, "-m", "venv", *([] if fresh else ["--without-pip"]), str(venv)], cwd=tmp)
    python = venv / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site_packages = Path(run([str(python), "-c", purelib], tmp).stdout.strip())
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ORPOSE_CHECKOUT", "VIRTUAL_ENV")}
    environ |= {"PATH": f"{venv / 'bin'}:{environ.get('PATH', '')}", "RAY_USAGE_STATS_ENABLED": "0"}
    started = time.perf_counter()
    if fresh:  # as the README's install line: the teacher extra and mmcv-lite, pinned by the stack's constraints
        constraints = ROOT / STACK_CONSTRAINTS[(Path(sys.prefix) / "stack").read_text().strip()]
        wheel = f"{built['wheel']}[teacher]"
        run([str(python), "-m", "pip", "install", "-q", "-c", str(constraints), wheel, "mmcv-lite"], tmp, environ, 3600)
    else:
        (site_packages / "_orpose_test_dependencies.pth").write_text(
            f"import site; site.addsitedir({str(dependency_site(tmp))!r})\n"
        )
        run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(built["wheel"])], tmp, environ)
    print(f"\nwheel installed ({'fresh' if fresh else 'dependencies shared'}) in {time.perf_counter() - started:.1f} s")
    work = tmp / "work"
    work.mkdir()
    return {"python": python, "bin": venv / "bin", "site": site_packages, "env": environ, "cwd": work}


CHECK_IMPORTS = """
import importlib.util, json, sys, orpose
from orpose.pipeline.cli import main
failed = {}
for name in sys.argv[1].split(","):
    try:
        main([name, "--help"])
    except SystemExit as exit:
        if exit.code not in (0, None):
            failed[name] = exit.code
    else:
        failed[name] = "no exit"
print(json.dumps({"orpose": orpose.__file__, "sys_path": sys.path, "failed": failed,
                  "tests": importlib.util.find_spec("tests") is not None}))
"""


def test_the_installed_command_line_answers_every_help(clean_env):
    env, cwd = clean_env["env"], clean_env["cwd"]
    top = run([str(clean_env["bin"] / "labels"), "--help"], cwd, env).stdout
    assert all(name in top for name in COMMANDS)
    seen = json.loads(
        run([str(clean_env["python"]), "-c", CHECK_IMPORTS, ",".join(COMMANDS)], cwd, env).stdout.splitlines()[-1]
    )
    assert seen["failed"] == {}
    assert Path(seen["orpose"]).parent == clean_env["site"] / "orpose"
    assert not any(entry and Path(entry).resolve() == ROOT for entry in seen["sys_path"])
    assert not seen["tests"]


READ_RUN = """
import json, sys, torch
from orpose import LabelRun, PoseLabelDataset, PoseLabelStream
run = LabelRun(sys.argv[1])
frames = [frame.frame_id for frame in run]
stream = PoseLabelStream(run, shuffle=False)
loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)
streamed = [item["frame_id"] for item in loader]
dataset = PoseLabelDataset(run)
items = [dataset[i]["frame_id"] for i in range(len(dataset))]
print(json.dumps({"frames": frames, "streamed": streamed, "dataset": items,
                  "persons": sum(len(run.get(f)) for f in frames)}))
"""


def test_the_installed_wheel_labels_frames_and_reads_the_run(clean_env):
    """`labels synth` makes frames outside the repository, `labels run --config tiny` labels them on Ray (the
    default executor) with the checkpoints the wheel ships, the run reads back through LabelRun, the stream in a
    2-worker DataLoader and the dataset, and `labels verify` passes."""
    labels, env, cwd = str(clean_env["bin"] / "labels"), clean_env["env"], clean_env["cwd"]
    started = time.perf_counter()
    run(
        [labels, "synth", "--out", "frames", "--frames", "2", "--cameras", "2", "--width", "320", "--height", "240"],
        cwd,
        env,
    )
    run(
        [
            labels,
            "run",
            "--config",
            "tiny",
            "--frames",
            "frames/manifest.jsonl",
            "--out",
            "run",
            "--no-progress",
            "device=cpu",
        ],
        cwd,
        env,
    )
    seen = json.loads(run([str(clean_env["python"]), "-c", READ_RUN, "run"], cwd, env).stdout.splitlines()[-1])
    verify = run([labels, "verify", "run"], cwd, env)
    print(f"\nclean-venv labelling (synth, run on Ray, read, verify): {time.perf_counter() - started:.1f} s")
    assert len(seen["frames"]) == 4  # 2 instants x 2 cameras, each exactly once
    assert seen["persons"] > 0 and seen["dataset"]  # the trained tiny teacher finds the synthetic people
    assert sorted(seen["streamed"]) == sorted(seen["dataset"])  # every item once through the 2 workers
    assert verify.stdout.strip().endswith("OK")
