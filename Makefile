# `make test` sets up a fresh machine (apt + pip) and runs the whole test suite.
PYTHON ?= python3

.PHONY: setup test lint

setup:
	bash scripts/setup.sh

test: setup
	$(PYTHON) -m pytest -q
	$(PYTHON) -m ruff check .

lint:
	$(PYTHON) -m ruff check .
