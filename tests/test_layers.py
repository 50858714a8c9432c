"""The folder tree is the architecture: each package imports only packages of a lower layer, so no
package imports upward and there is no import loop; tools and the product never import tests."""

import ast
from pathlib import Path

ROOT = Path(__file__).parents[1]
# Lower layers first. A package may import its own modules and those of lower layers only.
LAYERS = [
    ("orpose",),  # the namespace root's own modules: the error base class, the checkout (its API is lazy)
    ("configs", "joints", "frames"),  # typed configs, joint conventions, frame sources, geometry, file helpers
    ("fusion",),  # multi-view maths: instants, association, triangulation (the plan groups instants with it)
    ("synth", "teachers", "label_store"),  # synthetic frames; the models; the HDF5 store
    ("evaluation", "stages"),  # metrics against ground truth; the stage graph and its stages
    ("visualize", "training"),  # pictures of labels; training of the tiny teacher
    ("pipeline",),  # the driver, executors, bench and the `labels` command
]
LAYER = {package: level for level, packages in enumerate(LAYERS) for package in packages}


def package_of(module: str) -> str:
    """The layer name of an imported module: `orpose.frames.decode` -> frames, `orpose.errors` -> orpose."""
    parts = module.split(".")
    if parts[0] == "orpose" and len(parts) > 1 and parts[1] in LAYER:
        return parts[1]
    return parts[0]


def imported_packages(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(package_of(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(package_of(node.module))
    return names


def test_every_package_imports_only_lower_layers():
    upward = []
    for package, level in LAYER.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            for name in imported_packages(path) & (set(LAYER) | {"tests", "tools"}):
                if name != package and LAYER.get(name, len(LAYERS)) >= level:
                    upward.append(f"{path.relative_to(ROOT)} imports {name}")
    assert upward == []


def test_tools_do_not_import_tests():
    offenders = [
        str(p.relative_to(ROOT)) for p in sorted((ROOT / "tools").glob("*.py")) if "tests" in imported_packages(p)
    ]
    assert offenders == []


def test_the_layer_table_names_every_package():
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists() and p.name != "tests"}
    assert packages == set(LAYER)
