"""One import name (issue 32): a student's repository has its own `configs/`, `training/`, `evaluation/`,
`frames/` and `joints/`; with those first on `sys.path`, a student script still imports our reader and
iterates a run, and its own packages stay its own. `import orpose` alone loads no heavy package."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]

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


def repository_packages() -> set[str]:
    """The repository's top-level package folders: everything installed under `orpose` but its own modules."""
    folders = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file() and not p.is_symlink()}
    return folders - {"tests", "orpose"}


def test_orpose_links_every_package_folder_and_nothing_else():
    """`orpose/X` is a relative link to `../X` for every package folder (so static tools and setuptools read
    `orpose.X` as files), `orpose/data` ships the tiny teacher, and no other link exists."""
    links = {p.name: os.readlink(p) for p in (ROOT / "orpose").iterdir() if p.is_symlink()}
    assert links == {name: f"../{name}" for name in repository_packages() | {"data"}}


def test_ruff_bans_every_bare_package_import():
    """A bare `import frames` works from the repository root only (and loads a second copy of the module):
    ruff refuses it for every package folder, and the ban list follows the folders."""
    tomllib = pytest.importorskip("tomllib")
    banned = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]["flake8-tidy-imports"]
    assert set(banned["banned-api"]) == repository_packages()


def test_orpose_resolves_through_its_own_folder(tmp_path):
    """`orpose.label_store` is the folder `orpose/label_store`, with no search-path trick: from a plain checkout
    on PYTHONPATH, a second copy of the package (`orpose.orpose`) or the tests (`orpose.tests`) never import."""
    script = (
        "import importlib.util, json, orpose, orpose.label_store.reader as r\n"
        "print(json.dumps({'path': list(orpose.__path__), 'reader': r.__file__,\n"
        "  'second_copy': importlib.util.find_spec('orpose.orpose') is not None,\n"
        "  'tests': importlib.util.find_spec('orpose.tests') is not None}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-S", "-c", "import sys; sys.path.append(%r); exec(%r)" % (sysconfig_purelib(), script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["path"] == [str(ROOT / "orpose")]
    assert seen["reader"] == str(ROOT / "orpose" / "label_store" / "reader.py")
    assert not seen["second_copy"] and not seen["tests"]


def sysconfig_purelib() -> str:
    import sysconfig

    return sysconfig.get_paths()["purelib"]


PUBLIC_IMPORTS = (  # the five imports issue 39 found no editor could follow: code, name, its file, what mypy reveals
    ("from orpose.label_store.reader import LabelRun", "LabelRun", "label_store/reader.py", "LabelRun()"),
    ("from orpose.pipeline.run import run_labels", "run_labels", "pipeline/run.py", "run_labels"),
    ("import orpose.stages.graph", "graph", "stages/graph.py", "orpose.stages.graph.default_graph"),
    ("from orpose.teachers.detector import PersonDetector", "PersonDetector", "teachers/detector.py", "PersonDetector"),
    (
        "from orpose.label_store.stream import PoseLabelStream",
        "PoseLabelStream",
        "label_store/stream.py",
        "PoseLabelStream",
    ),
)
# what mypy reveals of each (the types are the files' own: an import it could not resolve would reveal Any)
REVEALED = (
    "orpose.label_store.reader.LabelRun",
    "-> orpose.pipeline.summary.RunSummary",
    "-> orpose.stages.graph.StageGraph",
    "orpose.teachers.detector.PersonDetector",
    "orpose.label_store.stream.PoseLabelStream",
)


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> Path:
    """A virtual environment with nothing installed: the plain checkout is found through PYTHONPATH only."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    return venv / "bin" / "python"


@pytest.mark.parametrize("where", ["development environment", "checkout on PYTHONPATH"])
def test_an_editor_follows_the_public_imports(where, bare_python, tmp_path):
    """Jedi, the engine behind many editors, goes to the definition of each import by reading files, in the
    environment `make setup` builds and in an empty one with the checkout on its search path."""
    jedi = pytest.importorskip("jedi")
    python, added = (sys.executable, []) if where.startswith("development") else (str(bare_python), [str(ROOT)])
    environment = jedi.create_environment(python, safe=False)
    project = jedi.Project(path=tmp_path, added_sys_path=added)
    for code, name, path, _ in PUBLIC_IMPORTS:
        found = jedi.Script(code, path=tmp_path / "x.py", environment=environment, project=project).goto(
            1, code.rindex(name) + 1, follow_imports=True
        )
        assert [Path(d.module_path).resolve() for d in found if d.module_path] == [ROOT / path], code


@pytest.mark.parametrize("where", ["development environment", "checkout on PYTHONPATH"])
def test_mypy_resolves_the_public_imports(where, bare_python, tmp_path):
    """mypy, which finds modules by their files as pyright and Pylance do, types each import: in the environment
    `make setup` builds and from a plain checkout (MYPYPATH)."""
    pytest.importorskip("mypy")
    uses = tmp_path / "uses.py"
    uses.write_text("".join(f"{code}\nreveal_type({expression})\n" for code, _, _, expression in PUBLIC_IMPORTS))
    python, env = sys.executable, dict(os.environ)
    if not where.startswith("development"):
        python, env = str(bare_python), env | {"MYPYPATH": str(ROOT)}
    command = [sys.executable, "-m", "mypy", "--python-executable", python, "--follow-imports=silent"]
    command += ["--ignore-missing-imports", "--no-incremental", str(uses)]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    revealed = [line for line in result.stdout.splitlines() if "Revealed type" in line]
    assert len(revealed) == len(PUBLIC_IMPORTS), result.stdout[-3000:]
    for line, expected in zip(revealed, REVEALED):
        assert expected in line and '"Any"' not in line, line
