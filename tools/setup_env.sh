#!/usr/bin/env bash
# Creates .venv and installs the pinned OpenMMLab + Ray stack from constraints.txt.
#
# Why a script and not a plain `pip install -e .`: mmcv 2.1.0 has no wheel for torch 2.4, so it
# is compiled from source with its ops, which needs torch already installed and pip's build
# isolation switched off (ENVIRONMENT.md). On a machine with CUDA and nvcc the same build
# compiles the CUDA ops too (set FORCE_CUDA=1 to insist). Each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=.venv
export PIP_DISABLE_PIP_VERSION_CHECK=1

step() { printf '\n== %s (%ss)\n' "$1" "$SECONDS"; }

if [ ! -x "$VENV/bin/python" ]; then
  step "creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --progress-bar off -c constraints.txt)

step "build tools"
"${PIP[@]}" -q "setuptools<70" wheel ninja

step "torch and torchvision"
"${PIP[@]}" -q torch torchvision numpy

if ! "$VENV/bin/python" -c "import mmcv.ops" 2>/dev/null; then
  step "mmcv with its ops, built from source (minutes on a small machine; pip caches the wheel)"
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
    "${PIP[@]}" --no-build-isolation mmcv==2.1.0
fi

step "the project and the rest of the stack"
"${PIP[@]}" -q -e ".[test,rerun]"

# detectron2 is a test-only extra (tests/teachers/test_detectron2_equivalence.py and
# `make check-detectron2` compare the converted X-152 with it); the product never imports it. It
# is not on PyPI: built from the source snapshot in ../shared/vendor when that is there (CI), about
# 2.5 minutes on 2 cores. Elsewhere its test skips and says so.
DETECTRON2_SRC=${DETECTRON2_SRC:-$(ls ../shared/vendor/detectron2-*.tar.gz 2>/dev/null | head -1 || true)}
if [ -n "$DETECTRON2_SRC" ] && [ -f "$DETECTRON2_SRC" ] && ! "$VENV/bin/python" -c "import detectron2" 2>/dev/null; then
  step "detectron2 (test-only extra) from $DETECTRON2_SRC"
  "${PIP[@]}" -q --no-build-isolation "$DETECTRON2_SRC"
fi

step "import check"
"$VENV/bin/python" -c "import mmdet, mmpose, mmcv.ops, ray, h5py, pycocotools, torch; \
print('mmcv ops ok; torch', torch.__version__, 'cuda', torch.cuda.is_available())"
step "done"
