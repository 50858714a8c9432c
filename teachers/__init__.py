"""teachers package: the teacher's models (mmdet, mmpose) built from their configs and checkpoints."""

import warnings

# Two warnings of the OpenMMLab stack that every run would print and no user can act on. Set here, on the
# package, so that every module that imports OpenMMLab (models, weights) is covered.
# - mmdet's mask head copies a tensor with new_tensor (mmdet 3.3, fcn_mask_head.py): an ordinary warning.
warnings.filterwarnings("ignore", message=r"To copy construct from a tensor", module=r"mmdet\.")
# - setuptools >= 80's notice that pkg_resources is deprecated, printed when mmengine (and mmdet, mmpose) import it:
#   on the modern stack the driver loads the models' mm configs before any run (teachers.install_check's
#   check_kernels_available), so a run's console would carry it.
warnings.filterwarnings("ignore", message=r"pkg_resources is deprecated as an API", category=UserWarning)


def quiet_optimizer_notice() -> None:
    """Import `torch.distributed.optim` once with its notice recorded instead of shown: torch prints a notice
    about TorchScript optimizers when mmengine imports that module, under simplefilter("always"), which no
    filter overrides. Called where OpenMMLab models are built or trained (`teachers.mm`, `training`), not on
    import of this package: a process that only reads configs or weights files (the Ray driver) stays
    without torch."""
    with warnings.catch_warnings(record=True):
        try:
            import torch.distributed.optim  # noqa: F401
        except ImportError:  # a torch built without distributed: mmengine does not import it either
            pass


# mmcv-lite (no compiled ops) is the default install: its `mmcv._ext` is provided on torchvision's kernels
# before any mmcv op module is imported, in every process that imports the teachers (teachers.mmcv_ext).
from orpose.teachers import mmcv_ext as _mmcv_ext  # noqa: E402

_mmcv_ext.install()
