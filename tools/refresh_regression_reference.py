"""`make regression-reference`: re-label the bundled sample with the trained tiny teacher and
overwrite tests/regression/tiny_sample_reference.json (labels, plus the accuracy figures against
the sample's ground truth). Deliberate: review `git diff` before committing."""

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from label_store.compare import reference_from_run  # noqa: E402
from tests.regression.test_sample_regression import REFERENCE, accuracy, label_sample  # noqa: E402

with tempfile.TemporaryDirectory() as folder:
    run = Path(folder) / "run"
    result = label_sample(run)
    if result.returncode != 0:
        sys.exit(result.stderr)
    reference_from_run(run, REFERENCE)
    figures = accuracy(run)
reference = json.loads(REFERENCE.read_text())
reference["accuracy"] = figures
REFERENCE.write_text(json.dumps(reference, indent=0) + "\n")
print(f"wrote {REFERENCE.relative_to(ROOT)}: accuracy {json.dumps({k: round(v, 3) for k, v in figures.items()})}; "
      "review it with `git diff` before committing")
