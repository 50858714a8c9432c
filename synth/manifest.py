"""Big synthetic manifests for measuring planning: millions of rows whose image paths need not exist.

`write_manifest(folder, frames)` writes `folder/manifest.jsonl` (MVOR-like ids `dayD/camC/NNNNNNNNN`,
paths relative to the folder, a timestamp per frame) and the bundled sample's `calibration.json`
beside it, so that `labels run --plan-only` reads it like any manifest. Planning never opens an image;
labelling such a manifest rejects every frame as missing_file.
"""

from __future__ import annotations

import json
import shutil
from importlib.resources import files
from pathlib import Path

__all__ = ["write_manifest", "SAMPLE_CALIBRATION"]

# the bundled sample's two-camera rig (data/sample/calibration.json is a copy), shipped with the package
SAMPLE_CALIBRATION = Path(str(files("orpose.synth") / "calibration.json"))
_CHUNK = 100_000


def write_manifest(folder: str | Path, frames: int, days: int = 4) -> Path:
    """Write `frames` manifest rows (round-robin over the sample's cameras, `days` days); returns the manifest."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SAMPLE_CALIBRATION, folder / "calibration.json")
    cameras = [c.rsplit("/", 1)[-1] for c in json.loads(SAMPLE_CALIBRATION.read_text())["cameras"]]
    path = folder / "manifest.jsonl"
    per_day = -(-frames // days)
    with open(path, "w") as handle:
        for start in range(0, frames, _CHUNK):
            lines = []
            for n in range(start, min(start + _CHUNK, frames)):
                day, camera = n // per_day + 1, cameras[n % len(cameras)]
                key = f"day1/{camera}"  # the sample's calibration keys; the day is in the id and path only
                folder, name = f"day{day}/{camera}", f"{n:09d}"
                lines.append(
                    f'{{"frame_id": "{folder}/{name}", "camera": "{key}", "color": "{folder}/color/{name}.png", '
                    f'"depth": "{folder}/depth/{name}.png", "timestamp": {n / 30:.3f}}}\n'
                )
            handle.writelines(lines)
    return path
