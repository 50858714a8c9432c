"""`make regression-reference`: re-label the regression source with the trained tiny teacher and
overwrite tests/regression/tiny_sample_reference.json, printing every difference it accepts
against the reference it replaces. Deliberate: review the printed differences and `git diff`
before committing. The accuracy floors are not here: they are fixed in the test."""

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from evaluation.regression import REFERENCE, TOLERANCES, label_sample  # noqa: E402
from label_store.compare import compare, reference_from_run  # noqa: E402

with tempfile.TemporaryDirectory() as folder:
    run = Path(folder) / "run"
    result = label_sample(run)
    if result.returncode != 0:
        sys.exit(result.stderr)
    try:
        accepted = compare(REFERENCE, run, TOLERANCES)
        print("differences accepted against the previous reference:")
        print("\n".join(accepted.lines()))
        print("  (none past the tolerances)" if accepted.ok else f"  {len(accepted.problems)} past the tolerances")
    except (FileNotFoundError, ValueError) as error:  # no reference yet, or one of an older format
        print(f"no comparable previous reference ({error})")
    reference_from_run(run, REFERENCE)
print(f"wrote {REFERENCE.relative_to(ROOT)}; review it with `git diff` before committing")
