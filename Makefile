# Thin targets: each one calls a script or the `labels` command. See README.md.
# STACK picks the environment every target uses: pinned (default; .venv, Python 3.11, torch 2.4.1,
# numpy 1.26, constraints.txt) or modern (.venv-modern, Python 3.12, torch 2.15, numpy 2,
# constraints-modern.txt), e.g. `make test STACK=modern`.
STACK       ?= pinned
ifeq ($(STACK),pinned)
VENV        := .venv
CONSTRAINTS := constraints.txt
else ifeq ($(STACK),modern)
VENV        := .venv-modern
CONSTRAINTS := constraints-modern.txt
else
$(error STACK must be pinned or modern, not '$(STACK)')
endif
export STACK
# MMCV: lite (default; mmcv-lite, nothing compiled, the teacher's ops on torchvision's kernels) or full
# (mmcv compiled with its CPU ops, for configs that ask for mmcv's own kernels), e.g. `make setup MMCV=full`.
MMCV        ?= lite
export MMCV
PY          := $(VENV)/bin/python
LABELS      := $(VENV)/bin/labels
SETUP_STAMP := $(VENV)/.setup-stamp-$(MMCV)
PYTEST_ARGS ?=
TEACHER     ?= paper
FRAMES      ?= data/sample/manifest.jsonl
RUN_DIR     ?= runs/$(TEACHER)-sample

.PHONY: setup test lint format labels bench sample tiny-weights tiny-teacher regression-reference clean-venv check-detectron2 check-install

## setup: create the STACK's environment (.venv or .venv-modern) and install it (instant when already done)
setup: $(SETUP_STAMP)

# Re-runs only when the pins, the package metadata or the script change.
$(SETUP_STAMP): $(CONSTRAINTS) pyproject.toml tools/setup_env.sh tools/mmcv_build.sh
	bash tools/setup_env.sh
	touch $@

## labels: the labelling job: TEACHER (default paper) over FRAMES (default the bundled sample)
##         into RUN_DIR. Fetches the weights first; the tiny teacher's are made offline.
labels: setup
	@if [ "$(TEACHER)" = "tiny" ]; then $(LABELS) weights --teacher tiny --init --if-missing; \
	 else $(LABELS) weights --teacher $(TEACHER); fi
	$(LABELS) run --config $(TEACHER) --frames $(FRAMES) --out $(RUN_DIR) $(ARGS)

## test: the linter (ruff: lint and format check) and the whole test suite (runs setup first when needed)
test: setup lint
	$(PY) -m pytest $(PYTEST_ARGS)

## lint: ruff's checks and its format check over the tree, mypy over the typed public API (configs in pyproject.toml);
##       `make format` fixes what it can
lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

## format: apply ruff's import order, fixes and formatting
format: setup
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

## sample: re-render the bundled synthetic sample in data/sample (commit the result)
sample: setup
	rm -rf data/sample
	$(LABELS) synth --out data/sample --frames 4 --cameras 2 --seed 0

## clean-venv: remove the STACK's environment (the next target reinstalls; pip's cache keeps it quick)
clean-venv:
	rm -rf $(VENV)

## tiny-weights: seeded checkpoints of the tiny teacher where its config reads them (data/tiny_teacher/tiny/),
##         only those missing: the trained ones committed there are kept
tiny-weights: setup
	$(LABELS) weights --teacher tiny --init --if-missing

## regression-reference: re-label the regression source with the trained tiny teacher, overwrite the CI reference, print what changed
##         (deliberate: review `git diff tests/regression` before committing)
regression-reference: setup
	$(PY) -m tests.regression.sample

## tiny-teacher: retrain the tiny teacher on synthetic scenes (mmengine Runner; CPU, hours) into data/tiny_teacher/tiny/,
##         where configs/teachers/tiny.py reads it (review data/tiny_teacher/README.md, then commit)
tiny-teacher: setup
	$(PY) -m orpose.training.tiny --out data/tiny_teacher --work build/tiny-teacher

## bench: the pipeline against the naive per-frame loop (frames/s, ratio, memory at N and 10 x N)
bench: setup
	$(LABELS) bench --config tiny --frames 16 thresholds.box_score=0.3 detector.max_persons=6

## check-detectron2: the converted X-152 against detectron2 itself, stage by stage (installs the
##         test-only detectron2 extra from DETECTRON2_SRC, default ../shared/vendor/detectron2-*.tar.gz)
DETECTRON2_SRC ?= $(firstword $(wildcard ../shared/vendor/detectron2-*.tar.gz))
check-detectron2: setup
	@$(PY) -c "import detectron2" 2>/dev/null || { test -n "$(DETECTRON2_SRC)" || \
	  { echo "no detectron2 source: set DETECTRON2_SRC=path/to/detectron2.tar.gz"; exit 2; }; \
	  $(PY) -m pip install -q -c $(CONSTRAINTS) --no-build-isolation "$(DETECTRON2_SRC)"; }
	$(PY) tools/check_detectron2.py --frames 2

## check-install: what `pip install` gives a user: the sdist and the wheel built from this tree, the wheel installed with
##         its teacher extra and mmcv-lite into an empty venv (pip downloads the stack), then labels run, read, verify
##         there. (`make test` runs the same checks with the dependencies shared from the STACK's venv, in seconds.)
check-install: setup
	FRESH_INSTALL=1 $(PY) -m pytest -s -p no:cacheprovider tests/test_install.py
