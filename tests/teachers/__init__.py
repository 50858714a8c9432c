"""Tests of the teachers package. Imported first, `teachers` puts mmcv's extension in place where mmcv-lite is
installed (teachers/mmcv_ext.py), before any test module imports mmcv.ops, mmdet or mmpose."""

import orpose.teachers  # noqa: F401
