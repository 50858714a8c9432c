# Sourced by tools/setup_env.sh for `make setup MMCV=full` (compiled mmcv; the default, mmcv-lite,
# compiles nothing): the two facts of building mmcv 2.1.0, in one place.
#
# MMCV_CPU_BUILD_ENV: CPU ops only, even on a GPU machine. mmcv's setup.py builds CUDA ops whenever
# torch sees a GPU, and that needs nvcc matching torch's CUDA; hiding the GPUs from the build is
# enough (the teacher runs its ops on torchvision's CUDA kernels, teachers/kernels.py).
MMCV_CPU_BUILD_ENV=(env MMCV_WITH_OPS=1 FORCE_CUDA=0 CUDA_VISIBLE_DEVICES= MAX_JOBS="${MAX_JOBS:-$(nproc)}")

# mmcv_needs_cxx20 PYTHON: true when that Python's torch is >= 2.13, whose headers require C++20.
mmcv_needs_cxx20() {
  "$1" -c "import sys, torch; sys.exit(tuple(map(int, torch.__version__.split('.')[:2])) < (2, 13))"
}

# mmcv_use_cxx20 SRC: mmcv 2.1.0's setup.py (in the unpacked sdist SRC) passes -std=c++17 to the C++
# compiler (its line 207, the non-Windows branch), so against torch >= 2.13 the build stops in
# torch's headers. The smallest honest fix is that one flag; nothing else of mmcv's source changes.
# Fails, saying so, when the line is not there (another mmcv).
mmcv_use_cxx20() {
  grep -q "extra_compile_args\['cxx'\] = \['-std=c++17'\]" "$1/setup.py" \
    || { echo "mmcv_build.sh: $1/setup.py no longer has the -std=c++17 line this fix expects" >&2; return 1; }
  sed -i "s/extra_compile_args\['cxx'\] = \['-std=c++17'\]/extra_compile_args['cxx'] = ['-std=c++20']/" "$1/setup.py"
}
