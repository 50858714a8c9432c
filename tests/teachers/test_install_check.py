"""What an install can run, checked from the configs alone: the driver of a Ray run checks every teacher
config before any worker starts, and stays without torch or the model packages (issue 29: importing them put
seconds of start-up before Ray's)."""

import subprocess
import sys

import pytest

from orpose.configs.schema import load_teacher_config
from orpose.teachers import mmcv_ext
from orpose.teachers.install_check import check_kernels_available
from orpose.teachers.mmcv_ext import CompiledOpMissing

LIGHT_DRIVER = r"""
import sys
import orpose.pipeline.run  # what `labels run` imports
from orpose.configs.schema import load_teacher_config
from orpose.teachers import mmcv_ext
from orpose.teachers.install_check import check_kernels_available
from orpose.teachers.weights import missing_checkpoints

mmcv_ext.compiled_mmcv = lambda: False  # check every config as on mmcv-lite, whatever is installed here
for name in ("tiny", "paper", "paper_x101"):
    config = load_teacher_config(name)
    check_kernels_available(config)
    missing_checkpoints(config)
heavy = [m for m in ("torch", "mmdet", "mmpose", "mmcv.ops", "ray") if m in sys.modules]
assert not heavy, heavy
print("ok")
"""


def test_the_driver_checks_every_teacher_config_without_importing_torch_or_the_model_packages():
    out = subprocess.run([sys.executable, "-c", LIGHT_DRIVER], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_a_model_config_with_a_layer_only_compiled_mmcv_runs_is_refused_on_mmcv_lite(monkeypatch):
    monkeypatch.setattr(mmcv_ext, "compiled_mmcv", lambda: False)
    config = load_teacher_config(
        "tiny", {"detector.cfg_options": {"model.backbone.dcn": {"type": "DCNv2", "deform_groups": 1}}}
    )
    with pytest.raises(CompiledOpMissing, match=r"detector.mm_config .* modulated deformable convolution"):
        check_kernels_available(config)
    check_kernels_available(load_teacher_config("tiny"))  # the same config without it passes
    monkeypatch.setattr(mmcv_ext, "compiled_mmcv", lambda: True)
    check_kernels_available(config)  # compiled mmcv runs it
