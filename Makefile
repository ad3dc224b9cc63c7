# slapay — the two commands: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test unit integration lint format bench crash install install-dev clean

$(PY):
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "slapay needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(PY) pyproject.toml constraints.txt
	$(PIP) -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) -e '.[dev]'
	@touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## Start the whole system in embedded mode (SQLite + durable SQL log) on 127.0.0.1:8001-8004.
run: install
	$(VENV)/bin/slapay run

## Unit and integration tests (real Postgres and a real Kafka-protocol broker).
test: install-dev
	$(PY) -m pytest -p no:cacheprovider -rs $(PYTEST_ARGS)

unit: install-dev
	$(PY) -m pytest -q tests/unit tests/service

## Only the tests against a real broker and database.
integration: install-dev
	$(PY) -m pytest -q tests/integration

## ruff (lint and format) and mypy (strict on shared/ and the ledger's domain); CI runs it first.
lint: install-dev
	$(VENV)/bin/ruff check shared services tests bench
	$(VENV)/bin/ruff format --check shared services tests bench
	$(VENV)/bin/mypy shared services

format: install-dev
	$(VENV)/bin/ruff format shared services tests bench
	$(VENV)/bin/ruff check --fix shared services tests bench

## The kill -9 crash test at full size (100k events per bus).
crash: install-dev
	SLAPAY_CRASH_EVENTS=100000 $(PY) -m pytest -p no:cacheprovider -q tests/integration/test_crash.py

## Throughput against raw baselines measured in the same run; prints medians and ratios.
bench: install-dev
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .slapay .pytest_cache .mypy_cache .ruff_cache *.egg-info
