#!/usr/bin/env bash
# Fills .whl/ with what tools/gpu_check.sh installs on a GPU machine that has no network: the
# OpenMMLab packages (pure Python wheels, mmcv-lite among them: nothing of mmcv is compiled), the few
# small packages they need that such an image usually lacks, and the source of the one that compiles
# (xtcocotools, against the image's numpy 2; about a minute). Run it on a
# machine with a package registry; the GPU machine's image must bring Python 3.12, torch,
# torchvision, numpy, opencv, h5py, scipy, matplotlib, pandas, pyarrow, psutil, tqdm and pytest.
# About 35 MB in all, Ray's 24 included (the project's device tool carries at most 64 MiB per run).
set -euo pipefail
cd "$(dirname "$0")/.."
# (a Python with setuptools and wheel: preparing the sources' metadata runs their setup.py)
PYTHON=${PYTHON:-$(ls .venv/bin/python 2>/dev/null || echo python3)}
mkdir -p .whl
rm -f .whl/*
wheels=(mmcv-lite==2.1.0 mmengine==0.10.7 mmdet==3.3.0 mmpose==1.3.2 addict==2.4.0 yapf==0.43.0 platformdirs==4.14.5
        terminaltables==3.1.10 json-tricks==3.17.3 munkres==3.0.0 termcolor==3.3.0 shapely==2.2.0
        pycocotools==2.0.11)
platforms=()
for n in 28 27 17; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
platforms+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d .whl "${wheels[@]}"
# the one built there from source (xtcocotools: against the image's numpy 2)
"$PYTHON" -m pip download -q --no-deps --no-binary=:all: --no-build-isolation -d .whl xtcocotools==1.14.3
# Ray (for gpu_check.sh's ray phase). Its wheel (79 MB) alone is over what one device call carries (64 MiB), and
# half of it is what labelling never imports: Java jars, RLlib, Tune, Serve, Train, LLM and the dashboard's web
# client. Those are left out and the rest recompressed with xz (24 MB); gpu_check.sh's setup unpacks it into its
# site folder. Of Ray's requirements the GPU image lacks only jsonschema and its own.
RAY_VERSION=$(grep '^ray==' constraints-modern.txt | cut -d= -f3)
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d .whl jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 \
  rpds-py==2026.9.1
ray_tmp=$(mktemp -d)
trap 'rm -rf "$ray_tmp"' EXIT
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d "$ray_tmp" "ray==$RAY_VERSION"
# (unpacked keeping the files' modes: raylet and gcs_server are programs)
"$PYTHON" - "$ray_tmp"/ray-*.whl "$ray_tmp/unpacked" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    for info in wheel.infolist():
        path = wheel.extract(info, sys.argv[2])
        if info.external_attr >> 16:
            os.chmod(path, (info.external_attr >> 16) & 0o777)
PY
rm -rf "$ray_tmp"/unpacked/ray/{jars,rllib,tune,serve,train,llm,dashboard/client}
tar -C "$ray_tmp/unpacked" -cf - . | xz -9 -T0 >"$ray_tmp/ray-core.tar.xz"
mv "$ray_tmp/ray-core.tar.xz" .whl/
du -sh .whl
ls .whl
