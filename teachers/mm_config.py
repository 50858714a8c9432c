"""OpenMMLab model config files: found (`mmdet::a/b.py` inside the installed package, or a path) and read
with mmengine's `Config`, without importing torch or the model packages: the driver checks the teacher's
configs (`teachers.install_check`) before it starts any worker, and stays light."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Mapping

__all__ = ["resolve_mm_config", "load_mm_config"]


def resolve_mm_config(spec: str, config_root: Path | None = None) -> Path:
    """`mmdet::a/b.py` -> the file inside the installed package; a relative path is taken from
    `config_root` (the project's configs/ folder) or the working directory."""
    if "::" in spec:
        package, rel = spec.split("::", 1)
        found = importlib.util.find_spec(package)  # not imported: mmdet would bring torch and mmcv's ops
        if found is None or not found.submodule_search_locations:
            raise FileNotFoundError(f"model config {spec!r}: package {package!r} is not installed")
        path = Path(found.submodule_search_locations[0]) / ".mim" / "configs" / rel
    else:
        path = Path(spec)
        if not path.is_absolute() and config_root is not None and (config_root / path).exists():
            path = config_root / path
    if not path.exists():
        raise FileNotFoundError(f"model config {spec!r} not found (looked at {path})")
    return path


def load_mm_config(
    spec: str,
    cfg_options: Mapping[str, Any] | None = None,
    config_root: Path | None = None,
    import_custom_modules: bool = True,
):
    """The mm config `spec` with `cfg_options` merged. `import_custom_modules=False` reads it without importing
    its `custom_imports` (model classes of our own, which bring torch): enough to look at its layers."""
    from mmengine.config import Config

    cfg = Config.fromfile(str(resolve_mm_config(spec, config_root)), import_custom_modules=import_custom_modules)
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    return cfg
