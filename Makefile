# Thin targets: each one calls a script or the `labels` command. See README.md.
VENV        := .venv
PY          := $(VENV)/bin/python
LABELS      := $(VENV)/bin/labels
SETUP_STAMP := $(VENV)/.setup-stamp
PYTEST_ARGS ?=

.PHONY: setup test sample tiny-weights clean-venv

## setup: create .venv and install the pinned stack (instant when already done)
setup: $(SETUP_STAMP)

# Re-runs only when the pins, the package metadata or the script change.
$(SETUP_STAMP): constraints.txt pyproject.toml tools/setup_env.sh
	bash tools/setup_env.sh
	touch $@

## test: the whole test suite (runs setup first when needed)
test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

## sample: re-render the bundled synthetic sample in data/sample (commit the result)
sample: setup
	rm -rf data/sample
	$(LABELS) synth --out data/sample --frames 4 --cameras 2 --seed 0

## clean-venv: remove .venv (the next target reinstalls; pip's cache keeps it quick)
clean-venv:
	rm -rf $(VENV)

## tiny-weights: seeded checkpoints of the tiny teacher into weights/tiny/
tiny-weights: setup
	$(LABELS) weights --teacher tiny --init
