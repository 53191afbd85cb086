# fairsynth — `make run` starts the UI on the demo table, `make test` runs the whole suite.
# Both install what they need first (pinned by constraints.txt) into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
SHELL  := /bin/bash
.SHELLFLAGS := -eo pipefail -c
# this machine's pip config lists local indexes that do not exist; drop pip's noise about them
QUIET_PIP := sed -u '/is ignored: it is neither/d'

.PHONY: install install-ydata install-mostly system-deps run lint test test-fast demo clean clean-ydata clean-mostly

install: $(STAMP) install-ydata install-mostly

# the isolated ydata-synthetic 1.4 venv (.venv-ydata); FAIRSYNTH_SKIP_YDATA=1 skips it
install-ydata:
	bash scripts/install-ydata.sh

# the isolated MOSTLY AI venv (.venv-mostly: mostlyai-engine + mostlyai-qa); FAIRSYNTH_SKIP_MOSTLY=1 skips it
install-mostly:
	bash scripts/install-mostly.sh

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[sdv,dev]" 2>&1 | $(QUIET_PIP)
	$(BIN)/python -m pip check
	touch $(STAMP)

system-deps:
	bash scripts/system-deps.sh

run: install
	$(BIN)/fairsynth ui

# ruff (lint + format), mypy on the typed contracts, deptry on the declared dependencies; tools from the dev extra.
# deptry scans the folders that install as fairsynth.* (pyproject's package-dir), read when the recipe runs.
SOURCE_DIRS = $(shell $(BIN)/python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["tool"]["setuptools"]["package-dir"].values())')

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/typecheck.py
	$(BIN)/deptry $(SOURCE_DIRS)

test: install system-deps lint
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure here"; fi; exit $$rc

test-fast: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

demo: install
	$(BIN)/python -m fairsynth.services.run.demo

clean: clean-ydata clean-mostly
	rm -rf $(VENV) .pytest_cache runs

clean-ydata:
	rm -rf .venv-ydata

clean-mostly:
	rm -rf .venv-mostly
