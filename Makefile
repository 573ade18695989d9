# vmforge: the two commands that matter are 'make demo' and 'make test' (see README.md).
VENV ?= .venv
PY := $(VENV)/bin/python
VMFORGE := $(VENV)/bin/vmforge
DEMO_DIR ?= /tmp/vmforge-demo

.PHONY: setup test unit integration lint demo bench docs clean

setup:
	scripts/setup-host

# Everything CI runs: unit + integration tests, ruff and mypy (as tests).
test: setup
	$(PY) -m pytest -q tests

unit:
	$(PY) -m pytest -q -m "not integration" tests

integration:
	$(PY) -m pytest -q -m integration tests

lint:
	$(PY) -m ruff check vmforge tests bench
	$(PY) -m mypy

demo: setup
	scripts/demo "$(DEMO_DIR)"

bench:
	$(PY) bench/run.py

docs:
	$(PY) -m vmforge.docgen > docs/spec-reference.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
