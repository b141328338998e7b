# Each target bootstraps .venv from pyproject.toml; nothing else needs installing by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench stress clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/metrana demo

lint: $(STAMP)
	$(BIN)/ruff check src tests stress scripts
	$(BIN)/ruff format --check src tests stress scripts

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m stress bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
