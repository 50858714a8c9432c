#!/usr/bin/env bash
# The GPU check: the teacher on CUDA, measured, on a GPU machine with no network.
#
# Made for the project's measuring machine (one H200; its image has Python 3.12, torch 2.11 with
# CUDA 13, torchvision, numpy 2, opencv, h5py, pandas, pyarrow, scipy, pytest; no OpenMMLab, no Ray,
# no registry). Everything but the ray phase runs through the in-process executor (`--executor local`).
# Before the first use, on a machine with a registry: `bash tools/gpu_wheels.sh` (fills .whl/, about 35 MB,
# Ray's 24 included), then send the working tree with .whl/ to the GPU machine and run there:
#
#   bash tools/gpu_check.sh [PHASE ...] [--report FILE]
#
# Phases (default: all = setup perf tests tiny ray, in this order: the figures that matter most first; each
# appends its section to the report as it goes, so a run cut off by the device's time limit still returns
# what it measured):
#   setup   install .whl/ into $SITE (default /tmp/site): mmcv-lite (nothing of mmcv is compiled: the
#           teacher's RoIAlign, NMS and deformable convolution run on torchvision's CUDA kernels,
#           teachers/mmcv_ext.py), xtcocotools built against the image's numpy, and Ray unpacked from
#           .whl/ray-core.tar.xz when there; about a minute
#   perf    the paper teacher, full TTA, lever by lever (PERF_LEVERS, `--list-levers` prints them): fp32, bf16,
#           + channels-last, + masks of the merged boxes from one view a frame (detector.masks=merged), + 8
#           views a forward (memory bounded by views_per_forward with merged masks), + the deformable
#           convolutions as one matrix product in the autocast precision (after tools/bench_deform_conv.py
#           times both kernels at the X-152's shapes); each `labels bench`
#           against the naive loop with --persons 6 (frames/s, x naive, TFLOP/s, GPU memory, labels same)
#   headline the paper teacher, full TTA, bf16: `labels bench` against the naive loop (seeded weights)
#   tests   the CUDA tests (tests/teachers/test_cuda.py: each kernel on CUDA against mmcv's on CPU) and
#           the kernel and placement tests
#   tiny    the tiny teacher: `labels bench` on CUDA, and the bundled sample labelled on CPU and on
#           CUDA, compared with `labels diff` (the proof that kernels and placement are right), and in bf16
#           on CUDA against fp32 on CPU (`--tolerances-of cuda:bf16`)
#   compile the perf phase's last lever + compile=true cudnn_benchmark=true (not in all: the first frames of each
#           of the 18 view sizes pay the compilation, minutes; run it when a call's time is left)
#   ray     the Ray executor on the GPU against the in-process one, same frames ($PERF_TEACHER, RAY_LEVER):
#           one actor with the whole graph and the whole GPU, then two such actors sharing it (0.5 GPU each)
#   paper   paper_x101 and paper with full TTA at fp32, bf16 and fp32+channels-last (paper bf16 is the
#           headline's, not run again), each one
#           `labels bench` (seeded weights: no hub is reachable there, and seeded weights detect no one, so
#           `--persons 6` keeps the detector's top 6 boxes a frame whatever their score: the keypoint and
#           lifting stages then do the work of 6 persons a frame)
#
# The report (default $OUT/gpu_report.md where $OUT is set, else build/gpu_report.md) holds every
# command and its output. Later phases need the setup's $SITE: run them in the same machine session.
# DEVICE (default cuda) and FRAMES (default 16; the paper benches take a quarter) exist for a dry run of
# the script's flow on a CPU machine: `DEVICE=cpu FRAMES=2 PYTHON=.venv/bin/python bash tools/gpu_check.sh tiny`
# (and PERF_TEACHER=tiny PERF_LEVERS="precision=fp32 detector.masks=merged" BENCH_WEIGHTS=data/tiny_teacher for
# the perf phase's flow: with seeded weights a one-frame bench can flip a flat heatmap's maximum between the
# naive loop's single crops and the pipeline's batches, and call the labels different).
set -uo pipefail
cd "$(dirname "$0")/.."
source tools/mmcv_build.sh

SITE=${SITE:-/tmp/site}
PYTHON=${PYTHON:-python3}
REPORT=${OUT:+$OUT/gpu_report.md}
REPORT=${REPORT:-build/gpu_report.md}
PERF_TEACHER=${PERF_TEACHER:-paper}
# The levers, cumulative, one `labels bench` each (';' between levers, spaces between a lever's overrides)
PERF_LEVERS=${PERF_LEVERS:-"precision=fp32;precision=bf16;precision=bf16 channels_last=true;\
precision=bf16 channels_last=true detector.masks=merged;\
precision=bf16 channels_last=true detector.masks=merged detector.views_per_forward=8;\
precision=bf16 channels_last=true detector.masks=merged detector.views_per_forward=8 detector.deform_conv=matmul"}
PHASES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --report) REPORT=$2; shift 2 ;;
    --list-levers) tr ';' '\n' <<<"$PERF_LEVERS"; exit 0 ;;
    setup|perf|headline|tests|tiny|paper|ray|compile) PHASES+=("$1"); shift ;;
    all) PHASES+=(setup perf tests tiny ray); shift ;;
    -h|--help) sed -n '2,47p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown phase or option '$1' (phases: setup perf headline tests tiny paper ray compile all)" >&2; exit 2 ;;
  esac
done
[ ${#PHASES[@]} -gt 0 ] || PHASES=(setup perf tests tiny ray)
mkdir -p "$(dirname "$REPORT")"
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
WORK=${WORK:-/tmp/gpu-check}
DEVICE=${DEVICE:-cuda}
FRAMES=${FRAMES:-16}
PAPER_FRAMES=$((FRAMES / 4 > 0 ? FRAMES / 4 : 1))  # the paper benches' N
# The benches' checkpoints: seeded where none are given (no hub is reachable on the GPU machine)
BENCH_WEIGHTS=${BENCH_WEIGHTS:-$WORK/weights}
mkdir -p "$WORK"
FAILED=0

section() { printf '\n## %s\n\n' "$1" >>"$REPORT"; echo "== $1"; }
# Runs a command, copies command and output into the report, remembers a failure (and goes on).
record() {
  printf '```\n$ %s\n' "$*" >>"$REPORT"
  local start=$SECONDS
  "$@" 2>&1 | tee -a "$REPORT"
  local rc=${PIPESTATUS[0]}
  printf '(exit %s, %s s)\n```\n' "$rc" "$((SECONDS - start))" >>"$REPORT"
  [ "$rc" = 0 ] || FAILED=1
  return "$rc"
}
labels() { "$PYTHON" -m orpose.pipeline.cli "$@"; }

phase_setup() {
  section "setup"
  ls .whl/*.whl >/dev/null 2>&1 || { echo "no wheels in .whl/: run tools/gpu_wheels.sh where a registry is reachable" >&2; exit 2; }
  record "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
  record "$PYTHON" -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --target "$SITE" .whl/xtcocotools-*.tar.gz
  if [ -f .whl/ray-core.tar.xz ]; then record tar -C "$SITE" -xJf .whl/ray-core.tar.xz; fi
  record "$PYTHON" -c "import orpose.teachers, torch, torchvision, numpy, mmcv, mmcv.ops, mmdet, mmpose, xtcocotools.coco; \
print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'numpy', numpy.__version__, 'mmcv', mmcv.__version__); \
print('cuda', torch.version.cuda, torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-')"
  command -v nvidia-smi >/dev/null && record nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
}

bench_paper() {  # TEACHER VARIANT: one full-TTA `labels bench` of a paper teacher against the naive loop
  local teacher=$1 variant=$2
  record labels weights --teacher "$teacher" --init --if-missing --weights-dir "$BENCH_WEIGHTS"
  section "$teacher, full TTA, $variant"
  # shellcheck disable=SC2086 (the variant is two overrides)
  record labels bench --config "$teacher" --frames "$PAPER_FRAMES" --memory-factor 2 --pipelines local \
    --weights-dir "$BENCH_WEIGHTS" --keep "$WORK/bench-$teacher-${variant//[ =]/_}" --persons 6 \
    device="$DEVICE" $variant
}

phase_headline() { bench_paper paper "precision=bf16"; }

bench_run() {  # TEACHER VARIANT: the pipeline's run of that variant's bench (its N-frame source)
  local run="$WORK/bench-$1-${2//[ =]/_}/run-local-frames-$PAPER_FRAMES"
  [ -d "$run" ] && echo "$run"
}

phase_perf() {
  local levers lever reference run precision extra diff
  IFS=';' read -ra levers <<<"$PERF_LEVERS"
  section "the X-152's deformable convolutions: torchvision's kernel against the matmul one"
  record "$PYTHON" tools/bench_deform_conv.py --device "$DEVICE" --repeat "$([ "$DEVICE" = cpu ] && echo 1 || echo 20)"
  for lever in "${levers[@]}"; do bench_paper "$PERF_TEACHER" "$lever"; done
  # each lever's labels against the first lever's (fp32), within the tolerances measured for its precision
  section "$PERF_TEACHER: each lever's labels against ${levers[0]}"
  reference=$(bench_run "$PERF_TEACHER" "${levers[0]}")
  for lever in "${levers[@]:1}"; do
    run=$(bench_run "$PERF_TEACHER" "$lever")
    precision=$(grep -o 'precision=[a-z0-9]*' <<<"$lever" | tail -1)
    precision=${precision#precision=}
    [ -n "$reference" ] && [ -n "$run" ] || { echo "no run of '$lever' to compare" | tee -a "$REPORT"; continue; }
    extra=()
    [[ $lever == *masks=merged* ]] && extra=(--mask-iou 0)  # merged masks change the masks by design
    echo "lever: $lever" | tee -a "$REPORT"
    diff=(labels diff --no-progress "$reference" "$run" --tolerances-of "${DEVICE%%:*}:${precision:-fp32}"
      ${extra[@]+"${extra[@]}"})
    if [ "$BENCH_WEIGHTS" = "$WORK/weights" ]; then
      # seeded weights: the --persons boxes score near chance (0.016 against 0.015), and any lever reorders them,
      # so the persons differ and the diff measures nothing; it is shown, not counted (measured on CPU: 0 of 6
      # persons matched even for channels-last). The tiny phase's trained teacher checks bf16 on the GPU.
      echo "(seeded weights: shown, not counted)" | tee -a "$REPORT"
      "${diff[@]}" 2>&1 | tail -3 | tee -a "$REPORT"
    else
      record "${diff[@]}"
    fi
  done
}

phase_tests() {
  section "tests on CUDA"
  record "$PYTHON" -m pytest -q -p no:cacheprovider -o addopts="" tests/teachers/test_cuda.py tests/teachers/test_kernels.py \
    tests/teachers/test_mm.py
}

phase_tiny() {
  section "tiny teacher: labels bench on $DEVICE"
  record labels weights --teacher tiny --init --if-missing
  record labels bench --config tiny --frames "$FRAMES" --pipelines local --keep "$WORK/bench-tiny" --persons 6 \
    device="$DEVICE"
  section "tiny teacher: the bundled sample on CPU and on $DEVICE, compared"
  rm -rf "$WORK/tiny-cpu" "$WORK/tiny-cuda"
  record labels run --executor local --no-progress --config tiny --frames data/sample/manifest.jsonl --out "$WORK/tiny-cpu" device=cpu
  record labels run --executor local --no-progress --config tiny --frames data/sample/manifest.jsonl --out "$WORK/tiny-cuda" device="$DEVICE"
  record labels diff --no-progress "$WORK/tiny-cpu" "$WORK/tiny-cuda" --tolerances-of "${DEVICE%%:*}:fp32"
  section "tiny teacher: the bundled sample in bf16 on $DEVICE against fp32 on CPU"
  rm -rf "$WORK/tiny-cuda-bf16"
  record labels run --executor local --no-progress --config tiny --frames data/sample/manifest.jsonl --out "$WORK/tiny-cuda-bf16" \
    device="$DEVICE" precision=bf16
  record labels diff --no-progress "$WORK/tiny-cpu" "$WORK/tiny-cuda-bf16" --tolerances-of "${DEVICE%%:*}:bf16"
}

# The ray phase's lever (the perf phase's best guess) and the GPUs a model actor reserves (0 on a CPU dry run,
# where Ray has no GPU to give and would wait for one)
RAY_LEVER=${RAY_LEVER:-"precision=bf16 channels_last=true detector.masks=merged"}
RAY_GPUS=${RAY_GPUS:-$([ "$DEVICE" = cpu ] && echo 0 || echo 1)}

phase_ray() {
  local half
  half=$("$PYTHON" -c "print($RAY_GPUS / 2)")
  record "$PYTHON" -c "import ray; print('ray', ray.__version__, ray.__file__)" || return
  section "$PERF_TEACHER, $RAY_LEVER: Ray, one actor with the whole graph and $RAY_GPUS GPU, against in-process"
  # shellcheck disable=SC2086 (the lever is several overrides)
  record labels bench --config "$PERF_TEACHER" --frames "$PAPER_FRAMES" --memory-factor 2 --pipelines local,ray-whole \
    --weights-dir "$BENCH_WEIGHTS" --keep "$WORK/ray-one" --persons 6 device="$DEVICE" $RAY_LEVER \
    run.gpus_per_actor="$RAY_GPUS"
  section "$PERF_TEACHER, $RAY_LEVER: Ray, two whole-graph actors sharing the GPU ($half each)"
  # shellcheck disable=SC2086
  record labels bench --config "$PERF_TEACHER" --frames "$PAPER_FRAMES" --memory-factor 2 --pipelines ray-whole \
    --weights-dir "$BENCH_WEIGHTS" --keep "$WORK/ray-two" --persons 6 device="$DEVICE" $RAY_LEVER \
    run.detector_actors=2 run.gpus_per_actor="$half"
}

phase_compile() {
  local levers
  IFS=';' read -ra levers <<<"$PERF_LEVERS"
  bench_paper "$PERF_TEACHER" "${levers[-1]} compile=true cudnn_benchmark=true"
}

phase_paper() {
  local teacher variant
  for teacher in paper_x101 paper; do
    for variant in "precision=fp32" "precision=bf16" "precision=fp32 channels_last=true"; do
      [ "$teacher $variant" = "paper precision=bf16" ] && continue  # the headline's
      bench_paper "$teacher" "$variant"
    done
  done
}

{
  printf '# GPU check, %s\n\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  printf 'commit %s; phases: %s\n' "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "${PHASES[*]}"
} >>"$REPORT"
for phase in "${PHASES[@]}"; do "phase_$phase"; done
echo "report: $REPORT"
exit "$FAILED"
