"""Compare two rendered data sets as data, not bytes: robust to another CPU's float arithmetic,
strict about any real change.

Two renders of the same settings on different x86-64 machines may differ in the last bits of
float arithmetic (numpy's SIMD sin/cos, BLAS summation order): a JSON number in its last printed
digit, a rendered pixel by a level, a pixel at an object's edge flipping to its neighbour. A real
change (another pose, another camera, a moved keypoint, a new field) changes far more. So:
- the same files; JSON and JSON lines parsed, the same keys, strings and integers equal, floats
  within `FLOAT_TOLERANCE` (-0.0 equals 0.0), RLE masks decoded and equal but for
  `PIXEL_FRACTION` of their pixels;
- PNG images decoded: the same size and type, and at most `PIXEL_FRACTION` of the pixels differ
  by more than one level (one count of depth);
- other files byte for byte.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

FLOAT_TOLERANCE = 2e-3  # two units of the finest printed digit (keypoints: 1/1000 px, 3D: 1/1000 mm)
PIXEL_FRACTION = 1e-3  # of an image's (or a mask's image's) pixels that may differ


def _files(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()}


def _json_differences(a, b, where: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) == {"size", "counts"} == set(b) and isinstance(a["counts"], str):
            return _mask_differences(a, b, where)
        if set(a) != set(b):
            return [f"{where}: keys differ: {sorted(set(a) ^ set(b))}"]
        return [d for key in a for d in _json_differences(a[key], b[key], f"{where}.{key}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} items"]
        return [d for n, (x, y) in enumerate(zip(a, b)) for d in _json_differences(x, y, f"{where}[{n}]")]
    if isinstance(a, float) or isinstance(b, float):
        if (
            isinstance(a, (int, float))
            and isinstance(b, (int, float))
            and not isinstance(a, bool)
            and not isinstance(b, bool)
            and math.isclose(a, b, rel_tol=0.0, abs_tol=FLOAT_TOLERANCE)
        ):
            return []
        return [f"{where}: {a!r} vs {b!r}"]
    return [] if (type(a), a) == (type(b), b) else [f"{where}: {a!r} vs {b!r}"]


def _mask_differences(a: dict, b: dict, where: str) -> list[str]:
    from pycocotools import mask as mask_utils

    if a["size"] != b["size"]:
        return [f"{where}: mask size {a['size']} vs {b['size']}"]
    differ = int((mask_utils.decode(dict(a)) != mask_utils.decode(dict(b))).sum())
    limit = PIXEL_FRACTION * a["size"][0] * a["size"][1]
    return [] if differ <= limit else [f"{where}: masks differ in {differ} pixels (limit {limit:.0f})"]


def _image_differences(a: Path, b: Path, name: str) -> list[str]:
    x, y = (cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in (a, b))
    if x is None or y is None:
        return [f"{name}: does not decode"]
    if x.shape != y.shape or x.dtype != y.dtype:
        return [f"{name}: {x.shape} {x.dtype} vs {y.shape} {y.dtype}"]
    off = np.abs(x.astype(np.int64) - y.astype(np.int64)) > 1
    if off.ndim == 3:
        off = off.any(axis=2)
    limit = PIXEL_FRACTION * off.size
    return (
        []
        if off.sum() <= limit
        else [f"{name}: {int(off.sum())} pixels differ by more than one level (limit {limit:.0f})"]
    )


def _load_json(path: Path):
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return json.loads(path.read_text())


def dataset_differences(a: Path, b: Path) -> list[str]:
    """What differs between two rendered data sets beyond float noise; [] when they are the same."""
    files_a, files_b = _files(Path(a)), _files(Path(b))
    if set(files_a) != set(files_b):
        return [f"files differ: {sorted(set(files_a) ^ set(files_b))}"]
    out: list[str] = []
    for name, path in files_a.items():
        other = files_b[name]
        if path.suffix == ".png":
            out += _image_differences(path, other, name)
        elif path.suffix in (".json", ".jsonl"):
            out += _json_differences(_load_json(path), _load_json(other), name)
        elif path.read_bytes() != other.read_bytes():
            out.append(f"{name}: bytes differ")
    return out
