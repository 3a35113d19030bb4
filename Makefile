# Two commands matter: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: install stack stack-down demo test test-heavy lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,api]'
	touch $(STAMP)

install: $(STAMP)

stack:
	compose/stack up

stack-down:
	compose/stack down

# The human-approval scenario: two separate processes on real Kafka + PostgreSQL.
demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/demo.sh

lint: install
	$(BIN)/ruff check engine projector schemas consumers tests examples bench
	$(BIN)/mypy

# Lint, then the whole suite on the real stack (started by the fixtures if needed).
test: lint
	$(BIN)/pytest -q

# Load and fault matrices: minutes, not seconds.
test-heavy: install
	$(BIN)/pytest -q -m heavy

# Benchmarks print JSON; run as modules so bench/projector.py cannot shadow the package.
bench: install
	$(BIN)/pip install -q -e '.[bench]'
	eval "$$(compose/stack up)" && $(BIN)/python -m bench.projector && \
	  for c in kafka-python confluent; do AMBER_KAFKA_CLIENT=$$c $(BIN)/python -m bench.inline; done && \
	  $(BIN)/python -m bench.inline --concurrency 4 --cold 0 && \
	  $(BIN)/python -m bench.hitl_floor && \
	  $(BIN)/python -m bench.vs_dbos && \
	  $(BIN)/python -m bench.workers

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache outbox
