# piyao: `make demo` installs into .venv and runs the pipeline on the embedded default;
# `make test` runs the whole test suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN     = $(VENV)/bin
DEMO_DATA ?= var/demo

.PHONY: install demo test clean-demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	rm -rf $(DEMO_DATA)
	$(BIN)/piyao --data-dir $(DEMO_DATA) demo

test: install
	$(BIN)/python -m pytest

clean-demo:
	rm -rf $(DEMO_DATA)
