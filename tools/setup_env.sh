#!/usr/bin/env bash
# Creates the virtual environment of one stack and installs it from that stack's constraints file.
#
#   STACK=pinned (default)  .venv         Python 3.11  constraints.txt         torch 2.4.1, numpy 1.26
#   STACK=modern            .venv-modern  Python 3.12  constraints-modern.txt  torch 2.15,  numpy 2
#
# Why a script and not a plain `pip install -e .`: mmcv 2.1.0 has no wheel for either torch, so it
# is compiled from source with its ops, which needs torch already installed and pip's build
# isolation switched off (ENVIRONMENT.md). Only mmcv's CPU ops are built, on every machine: the
# teacher runs its hot ops (RoIAlign, NMS, deformable convolution) on torchvision's kernels, which
# ship compiled for CUDA in torchvision's wheel, so a GPU node needs no CUDA toolkit (nvcc) and no
# nvcc/torch CUDA version match, the most common way OpenMMLab installs fail. Each step is skipped
# when already done.
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

if ! "$VENV/bin/python" -c "import mmcv.ops" 2>/dev/null; then
  step "mmcv with its CPU ops, built from source (7 to 12 minutes on 2 cores)"
  # CPU ops only (MMCV_CPU_BUILD_ENV); against torch >= 2.13 from the sdist with its one C++ flag
  # raised to C++20 (tools/mmcv_build.sh says why), built without pip's cache, which would otherwise
  # hand back a wheel built against another torch (undefined symbols at import).
  if mmcv_needs_cxx20 "$VENV/bin/python"; then
    src=$(mktemp -d)
    "$VENV/bin/python" -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d "$src" mmcv==2.1.0
    tar -xzf "$src"/mmcv-2.1.0.tar.gz -C "$src"
    mmcv_use_cxx20 "$src/mmcv-2.1.0"
    "${MMCV_CPU_BUILD_ENV[@]}" "${PIP[@]}" --no-build-isolation --no-cache-dir "$src/mmcv-2.1.0"
    rm -rf "$src"
  else
    "${MMCV_CPU_BUILD_ENV[@]}" "${PIP[@]}" --no-build-isolation mmcv==2.1.0
  fi
fi

if [ "$STACK" = modern ] && ! "$VENV/bin/python" -c "import xtcocotools._mask" 2>/dev/null; then
  # xtcocotools' published binary is built against numpy 1 ("numpy.dtype size changed" under
  # numpy 2); built from its source it compiles against numpy 2 and imports.
  step "xtcocotools from source (numpy 2)"
  "${PIP[@]}" -q --no-binary xtcocotools xtcocotools
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
  CUDA_VISIBLE_DEVICES= "${PIP[@]}" -q --no-build-isolation "$DETECTRON2_SRC"
fi

echo "$STACK" > "$VENV/stack"  # which constraints file this environment follows (tests/test_environment.py)

step "import check"
"$VENV/bin/python" -c "import mmdet, mmpose, mmcv.ops, ray, h5py, pycocotools, torch, numpy; \
print('mmcv ops ok; torch', torch.__version__, 'numpy', numpy.__version__, 'cuda', torch.cuda.is_available())"
step "done"
