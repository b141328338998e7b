# Each target bootstraps .venv from pyproject.toml; nothing else needs installing by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The test-only extras on top, examples (torch CPU build, gymnasium) and integrations (the
# frameworks metrana.integrations plugs into): only `make test` needs them.
EXAMPLES_STAMP := $(VENV)/.installed-examples
LINTED := src tests stress scripts examples

.PHONY: demo test lint typecheck bench stress clean

# urllib3-future (pulled in by niquests, the real Syvain client's HTTP library) replaces the
# urllib3 package at every interpreter start unless it is built with URLLIB3_NO_OVERRIDE=1;
# installed first that way, it sits beside urllib3 and requests (schemathesis) keeps urllib3.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	URLLIB3_NO_OVERRIDE=1 $(BIN)/pip install --quiet --no-binary urllib3-future \
		'urllib3-future==2.25.904'
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -c 'import urllib3; assert int(urllib3.__version__.split(".")[2]) < 900, \
		"urllib3 was replaced by urllib3-future " + urllib3.__version__ + "; see the Makefile"'
	touch $(STAMP)

# Rebuilt whenever $(STAMP) is, hence whenever pyproject.toml changes.
$(EXAMPLES_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,examples,integrations]'
	touch $(EXAMPLES_STAMP)

demo: $(STAMP)
	$(BIN)/metrana demo

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck $(EXAMPLES_STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m stress bench

# The short stress run; the long one: python -m stress run --writers 8 --points 650000
# --duration 600 --fault-interval 3
stress: $(STAMP)
	$(BIN)/python -m stress run --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
