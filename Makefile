# The two commands of the README. Each sets up what it needs in .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m compileall -q phishme_intel
	touch $@

## demo: start the bundled API simulator, sync it into the SQLite store, print what landed
demo: $(VENV)/.installed
	$(BIN)/python -m phishme_intel.demo

## test: lint and run the whole test suite
test: $(VENV)/.installed
	$(BIN)/ruff check phishme_intel phishme_to_product.py tests bench
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) demo-run .pytest_cache build *.egg-info
