"""or-pose-labels: pseudo-labels for multi-person 2D/3D human pose from unlabeled RGB-D frames.

Everything the project installs lives under this one name. The repository keeps its folders at the top
(`pipeline/`, `stages/`, `teachers/`, `label_store/`, `configs/`, ...) and this folder holds a relative
symlink to each (`orpose/label_store -> ../label_store`), so `label_store/reader.py` is
`orpose.label_store.reader` in a wheel, in an editable install, in a checkout on `PYTHONPATH` and for
every static tool alike. A student's own `configs/` or `training/` never meets ours.

The public API, imported on first use so that reading labels needs no more than numpy, h5py, opencv and
torch (the teacher's stack, mmcv, mmdet, mmpose and Ray, is the `teacher` extra):

    from orpose import LabelRun, PoseLabelDataset
    run = LabelRun("runs/tiny-sample")
    for frame in run: ...

- `LabelRun`, `FrameLabels`: a run (or one shard) read by frame id or in order (`orpose.label_store.reader`)
- `PoseLabelDataset`: the labels as a torch map-style dataset for student training (`orpose.label_store.dataset`)
- `PoseLabelStream`: the same items as a shard-aware shuffled IterableDataset, for runs of any size
  (`orpose.label_store.stream`)
- `load_index`, `load_person_index`: the run index, one row per frame / per person as arrays
  (`orpose.label_store.index`)
- `run_labels`: label a frame source into a run, as `labels run` does (`orpose.pipeline.run`)
- `evaluate`: score a run against COCO-style ground truth, as `labels evaluate` does (`orpose.evaluation.evaluate`)
"""

from importlib import import_module

__version__ = "0.1.0"

_PUBLIC = {
    "LabelRun": "orpose.label_store.reader",
    "FrameLabels": "orpose.label_store.reader",
    "PoseLabelDataset": "orpose.label_store.dataset",
    "PoseLabelStream": "orpose.label_store.stream",
    "load_index": "orpose.label_store.index",
    "load_person_index": "orpose.label_store.index",
    "run_labels": "orpose.pipeline.run",
    "evaluate": "orpose.evaluation.evaluate",
}
__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str) -> object:
    # PEP 562: the API's modules load on first use (`import orpose` alone imports nothing heavy)
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'orpose' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
