# `make test` sets up a fresh machine (apt + pip) and runs the whole test suite, the slow
# tests (Linux boots, network and disk acceptance, long differential runs) included.
# `make run` installs llvmtcg and runs the example riscv64 program (examples/).
PYTHON ?= python3

.PHONY: setup test test-slow lint install run

setup:
	bash scripts/setup.sh

test: setup
	$(PYTHON) -m pytest -q
	$(PYTHON) -m pytest -q -m slow   # Linux boots and long runs: ~3 min more
	$(PYTHON) -m ruff check .

test-slow: setup
	$(PYTHON) -m pytest -q -m slow

lint:
	$(PYTHON) -m ruff check .

install:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e .

run: install
	$(PYTHON) -m llvmtcg.user examples/hello-riscv64 $(ARGS)
