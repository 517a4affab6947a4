PYTHON ?= python3
PIP = $(PYTHON) -m pip
CONSTRAINTS = requirements/constraints.txt

.PHONY: install test test-fast

# Python 3.11: schnetpack 2.2.0 declares Python >= 3.12 but runs on 3.11, so it goes in with
# --no-deps --ignore-requires-python; its runtime dependencies come from setup.cfg.
# The constraints file pins the local CPU torch so pip never pulls a CUDA build.
install:
	$(PIP) install -c $(CONSTRAINTS) torch==2.13.0
	if $(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info < (3, 12) else 1)'; then \
	  $(PIP) install -c $(CONSTRAINTS) --no-deps --ignore-requires-python schnetpack==2.2.0; fi
	$(PIP) install -c $(CONSTRAINTS) -e '.[test]'

test:
	$(PYTHON) -m pytest -ra

test-fast:
	$(PYTHON) -m pytest -ra -m "not slow" tests
