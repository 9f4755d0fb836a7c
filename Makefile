# `make test` sets up a fresh machine (apt + pip) and runs the whole test suite, then the
# slow tests of system mode, aarch64 and user mode (Linux boots, network and disk
# acceptance, long differential runs, the fork and thread stress: ~2 min idle); `make
# test-slow` runs every slow test, in every directory.
# `make run` installs llvmtcg and runs the example riscv64 program (examples/).
PYTHON ?= python3

.PHONY: setup test test-slow lint install run

setup:
	bash scripts/setup.sh

test: setup
	$(PYTHON) -m pytest -q
	$(PYTHON) -m pytest -q -m slow tests/system tests/net tests/gdbstub tests/bench tests/aarch64 tests/accel tests/user
	$(PYTHON) -m ruff check .

test-slow: setup
	$(PYTHON) -m pytest -q -m slow

lint:
	$(PYTHON) -m ruff check .

install:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e .

run: install
	$(PYTHON) -m llvmtcg.user examples/hello-riscv64 $(ARGS)
