# `make install` creates the project's virtual environment .venv from the first python3 >= 3.11
# it finds (or PYTHON=...), so a stock Debian/Ubuntu python3 (PEP 668: no system-wide pip
# installs) works too; everything else runs from .venv.
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
  command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null \
  && { command -v $$p; break; }; done)
VENV = .venv
VPY = $(VENV)/bin/python
PIP = $(VPY) -m pip
CONSTRAINTS = requirements/constraints.txt
SYSTEM ?= systems/water

.PHONY: install test test-fast lint docs run

# Python 3.11: schnetpack 2.2.0 declares Python >= 3.12 but runs on 3.11, so it goes in with
# --no-deps --ignore-requires-python; its runtime dependencies come from setup.cfg.
# mace-torch 0.3.16 declares e3nn==0.4.4, which fails on torch >= 2.6: it goes in with --no-deps,
# and setup.cfg lists its runtime dependencies with e3nn 0.5.9.
# The constraints file pins the local CPU torch so pip never pulls a CUDA build.
install:
	@test -n "$(PYTHON)" || { echo "make install: no python3 >= 3.11 found; pass PYTHON=/path/to/python3.11+"; exit 1; }
	@echo "make install: $(PYTHON) -> $(VENV)"
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -c $(CONSTRAINTS) torch==2.13.0
	if $(VPY) -c 'import sys; sys.exit(0 if sys.version_info < (3, 12) else 1)'; then \
	  $(PIP) install -c $(CONSTRAINTS) --no-deps --ignore-requires-python schnetpack==2.2.0; fi
	$(PIP) install -c $(CONSTRAINTS) --no-deps mace-torch==0.3.16
	$(PIP) install -c $(CONSTRAINTS) -e '.[test,docs]'

# lint, types and the documentation site first (seconds), then the tests
test: lint docs
	$(VPY) -m pytest -ra

test-fast:
	$(VPY) -m pytest -ra -m "not slow" tests

lint:
	$(VPY) -m ruff check cgexplain tests benchmarks tutorials
	$(VPY) -m ruff format --check cgexplain tests benchmarks
	$(VPY) -m mypy

docs:
	NO_MKDOCS_2_WARNING=1 $(VPY) -m mkdocs build --strict --quiet --site-dir site

run:
	$(VENV)/bin/cgexplain run $(SYSTEM)
