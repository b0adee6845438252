# The two commands a new user runs (README "Quick start"):
#   make run    set up the virtual environment and run the main job on the local default
#   make test   set up the virtual environment and the local emulators, then run the whole test suite
# Both are idempotent: a second call reuses the environment.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench emulators clean

$(STAMP): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-input --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-input -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

emulators:
	bash .ci/emulators.sh

run: setup
	$(BIN)/props run

test: setup emulators
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .emu warehouse exports reports
