PYTHON ?= python3
PIP = $(PYTHON) -m pip
CONSTRAINTS = requirements/constraints.txt

.PHONY: install test test-fast

install:
	$(PIP) install -c $(CONSTRAINTS) torch==2.13.0
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info >= (3, 12))' && \
	  $(PIP) install -c $(CONSTRAINTS) --no-deps --ignore-requires-python schnetpack==2.2.0 || true
	$(PIP) install -c $(CONSTRAINTS) -e '.[test]'

test:
	$(PYTHON) -m pytest -ra

test-fast:
	$(PYTHON) -m pytest -ra -m "not slow"
