#!/usr/bin/env bash
# Creates the virtual environment of one stack and installs it from that stack's constraints file.
#
#   STACK=pinned (default)  .venv         Python 3.11  constraints.txt         torch 2.4.1, numpy 1.26
#   STACK=modern            .venv-modern  Python 3.12  constraints-modern.txt  torch 2.15,  numpy 2
#
# Why a script and not a plain `pip install -e .`: every package is installed against the stack's
# constraints file (pip would otherwise move numpy behind our back), and mmcv comes in one of two builds:
#
#   MMCV=lite (default)  mmcv-lite: OpenMMLab's own mmcv without compiled ops, a pure wheel, nothing to
#                        compile. mmcv's compiled extension (`mmcv._ext`) is provided by the project on
#                        torchvision's kernels (teachers/mmcv_ext.py): RoIAlign, NMS and deformable
#                        convolution v1, the ops the teacher runs; any other op names itself and says how
#                        to get compiled mmcv.
#   MMCV=full            mmcv 2.1.0 with its CPU ops, compiled from source (10 to 30 minutes on 2 cores):
#                        for configs that ask for mmcv's own kernels (`detector.nms=mmcv`) or other ops,
#                        and for the kernel-equality tests against mmcv. CPU ops only, on every machine: a
#                        GPU node needs no CUDA toolkit. The built wheel is kept in build/wheels/ (keyed by
#                        the mmcv version, the torch version and the Python tag), so a matching
#                        environment never compiles it twice.
#
# Each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

source tools/mmcv_build.sh

STACK=${STACK:-pinned}
export PIP_DISABLE_PIP_VERSION_CHECK=1
case "$STACK" in
  pinned) VENV=.venv; CONSTRAINTS=constraints.txt; WANT_PYTHON=3.11 ;;
  modern) VENV=.venv-modern; CONSTRAINTS=constraints-modern.txt; WANT_PYTHON=3.12 ;;
  *) echo "setup_env.sh: STACK must be 'pinned' or 'modern', not '$STACK'" >&2; exit 2 ;;
esac

step() { printf '\n== [%s] %s (%ss)\n' "$STACK" "$1" "$SECONDS"; }

# The interpreter: $PYTHON if given, else pythonX.Y on PATH, else one installed by pyenv.
find_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
  # (a pyenv shim is on PATH even where that version is not selected: it must also run)
  if "python$WANT_PYTHON" -c "" >/dev/null 2>&1; then command -v "python$WANT_PYTHON"; return; fi
  local root; root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  local found; found=$(ls -d "$root"/versions/"$WANT_PYTHON".*/bin/python"$WANT_PYTHON" 2>/dev/null | sort -V | tail -1 || true)
  if [ -n "$found" ]; then echo "$found"; return; fi
  if [ "$STACK" = pinned ]; then echo python3; return; fi
  echo "setup_env.sh: the $STACK stack needs Python $WANT_PYTHON: install it (e.g. 'pyenv install $WANT_PYTHON')" \
       "or point PYTHON at one" >&2
  exit 2
}

if [ ! -x "$VENV/bin/python" ]; then
  PY_FOR_VENV=$(find_python)
  step "creating $VENV with $("$PY_FOR_VENV" --version)"
  "$PY_FOR_VENV" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --progress-bar off -c "$CONSTRAINTS")

step "build tools"
"${PIP[@]}" -q "setuptools" wheel ninja

step "torch and torchvision"
"${PIP[@]}" -q torch torchvision numpy

MMCV=${MMCV:-lite}
has_compiled_mmcv() { "$VENV/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('mmcv._ext') is None)" 2>/dev/null; }
case "$MMCV" in
  lite)
    if has_compiled_mmcv; then
      step "mmcv: compiled mmcv is installed here; keeping it (remove it with: $VENV/bin/python -m pip uninstall mmcv)"
    else
      step "mmcv-lite (no compiled ops; the teacher's ops run on torchvision's kernels)"
      "${PIP[@]}" -q mmcv-lite
    fi
    ;;
  full)
    if ! has_compiled_mmcv; then
      "$VENV/bin/python" -m pip uninstall -q -y mmcv-lite 2>/dev/null || true  # the same files: never both
      TAG=$("$VENV/bin/python" -c "import sys, torch; print(f'torch{torch.__version__.split(\"+\")[0]}-cp{sys.version_info[0]}{sys.version_info[1]}')")
      WHEELS="build/wheels/mmcv-2.1.0-$TAG"
      if ! ls "$WHEELS"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
        step "mmcv with its CPU ops, built from source into $WHEELS (10 to 30 minutes on 2 cores)"
        # CPU ops only (MMCV_CPU_BUILD_ENV); against torch >= 2.13 from the sdist with its one C++ flag
        # raised to C++20 (tools/mmcv_build.sh says why). A wheel of our own, kept by its key: pip's cache
        # would hand back a wheel built against another torch (undefined symbols at import).
        src=$(mktemp -d)
        "$VENV/bin/python" -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d "$src" mmcv==2.1.0
        tar -xzf "$src"/mmcv-2.1.0.tar.gz -C "$src"
        if mmcv_needs_cxx20 "$VENV/bin/python"; then mmcv_use_cxx20 "$src/mmcv-2.1.0"; fi
        mkdir -p "$WHEELS"
        "${MMCV_CPU_BUILD_ENV[@]}" "$VENV/bin/python" -m pip wheel -q --no-deps --no-build-isolation --no-cache-dir \
          -w "$WHEELS" "$src/mmcv-2.1.0"
        rm -rf "$src"
      fi
      step "mmcv with its CPU ops from $WHEELS"
      "${PIP[@]}" -q "$WHEELS"/mmcv-2.1.0-*.whl
    fi
    ;;
  *) echo "setup_env.sh: MMCV must be 'lite' or 'full', not '$MMCV'" >&2; exit 2 ;;
esac

if [ "$STACK" = modern ] && ! "$VENV/bin/python" -c "import xtcocotools._mask" 2>/dev/null; then
  # xtcocotools' published binary is built against numpy 1 ("numpy.dtype size changed" under
  # numpy 2); built from its source it compiles against numpy 2 and imports.
  step "xtcocotools from source (numpy 2)"
  "${PIP[@]}" -q --no-binary xtcocotools xtcocotools
fi

step "the project and the rest of the stack"
# Editable in setuptools' compat mode: a plain path in a .pth file (the repository root), which editors, jedi,
# mypy and pyright read, where the default mode installs an import hook that only runs in Python. `orpose/`
# links the package folders, so `orpose.X` resolves through that one path; ruff refuses a bare `import X`.
"${PIP[@]}" -q -e ".[teacher,test,rerun]" --config-settings editable_mode=compat

# detectron2 is a test-only extra (tests/teachers/test_detectron2_equivalence.py and
# `make check-detectron2` compare the converted X-152 with it); the product never imports it. It
# is not on PyPI: built from the source snapshot in ../shared/vendor when that is there (CI), about
# 2.5 minutes on 2 cores. Elsewhere its test skips and says so.
DETECTRON2_SRC=${DETECTRON2_SRC:-$(ls ../shared/vendor/detectron2-*.tar.gz 2>/dev/null | head -1 || true)}
if [ -n "$DETECTRON2_SRC" ] && [ -f "$DETECTRON2_SRC" ] && ! "$VENV/bin/python" -c "import detectron2" 2>/dev/null; then
  step "detectron2 (test-only extra) from $DETECTRON2_SRC"
  CUDA_VISIBLE_DEVICES= "${PIP[@]}" -q --no-build-isolation "$DETECTRON2_SRC"
fi

echo "$STACK" > "$VENV/stack"  # which constraints file this environment follows (tests/test_environment.py)

step "import check"
"$VENV/bin/python" -c "import orpose.teachers, mmdet, mmpose, mmcv.ops, ray, h5py, pycocotools, torch, numpy; \
from orpose.teachers.mmcv_ext import compiled_mmcv; \
print('mmcv ops ok (' + ('compiled' if compiled_mmcv() else 'mmcv-lite, on torchvision') + '); torch', \
torch.__version__, 'numpy', numpy.__version__, 'cuda', torch.cuda.is_available())"
step "done"
