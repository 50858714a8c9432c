"""`make regression-reference`: re-label the bundled sample with the tiny teacher and overwrite
tests/regression/tiny_sample_reference.json. Deliberate: review `git diff` before committing."""

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from label_store.compare import reference_from_run  # noqa: E402
from teachers.weights import init_seeded_weights  # noqa: E402
from configs.schema import load_teacher_config  # noqa: E402
from tests.regression.test_sample_regression import REFERENCE, label_sample  # noqa: E402

with tempfile.TemporaryDirectory() as folder:
    weights = Path(folder) / "weights"
    init_seeded_weights(load_teacher_config("tiny"), weights)  # the same seeded weights the tests make
    result = label_sample(Path(folder) / "run", weights)
    if result.returncode != 0:
        sys.exit(result.stderr)
    reference_from_run(Path(folder) / "run", REFERENCE)
print(f"wrote {REFERENCE.relative_to(ROOT)}; review it with `git diff` before committing")
