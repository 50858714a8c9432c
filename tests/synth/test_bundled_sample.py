"""The bundled sample (data/sample) is exactly what `make sample` renders today.

If the generator changes on purpose, refresh the sample with `make sample` and commit it.
"""

import json
from pathlib import Path

from synth.generate import SynthSettings, generate
from tests.synth.test_generate import digest

SAMPLE = Path(__file__).parents[2] / "data" / "sample"


def test_bundled_sample_matches_a_fresh_render(tmp_path):
    recorded = json.loads((SAMPLE / "synth.json").read_text())
    recorded.pop("generator_version")
    generate(tmp_path, SynthSettings(**recorded), progress=False)
    assert digest(tmp_path) == digest(SAMPLE), "data/sample is stale: run `make sample` and commit it"


def test_bundled_sample_is_small_and_multi_person():
    size = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert size < 5 * 2**20
    gt = json.loads((SAMPLE / "annotations.json").read_text())
    assert len(gt["images"]) == 8 and len(gt["annotations"]) >= 10
