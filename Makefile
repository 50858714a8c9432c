# Thin targets: each one calls a script or the `labels` command. See README.md.
VENV        := .venv
PY          := $(VENV)/bin/python
LABELS      := $(VENV)/bin/labels
SETUP_STAMP := $(VENV)/.setup-stamp

.PHONY: setup test labels sample clean-venv

setup: $(SETUP_STAMP)

# Re-runs only when the pins or the package metadata change; otherwise `make setup` is instant.
$(SETUP_STAMP): constraints.txt pyproject.toml tools/setup_env.sh
	bash tools/setup_env.sh
	touch $@

test: setup
	$(PY) -m pytest

clean-venv:
	rm -rf $(VENV)
