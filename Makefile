# piyao: `make demo` installs into .venv and runs the pipeline on the embedded default (no servers);
# `make test` starts the test services, then runs the whole test suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN     = $(VENV)/bin
DEMO_DATA ?= var/demo
# Test services (scripts/*.sh): a single-node Elasticsearch and a private PostgreSQL on loopback.
ES_PORT ?= 9200
PG_PORT ?= 55432
REDIS_PORT ?= 56379
export PIYAO_ES_PORT = $(ES_PORT)
export PIYAO_PG_PORT = $(PG_PORT)
export PIYAO_REDIS_PORT = $(REDIS_PORT)

.PHONY: install install-test demo test services services-stop browser clean-demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# The test suite also fine-tunes a tiny transformer and converts the e5 weights: the `transformer`
# extra (torch, transformers) joins the install. pip's cache keeps the large wheels between runs.
$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[dev,transformer]"
	touch $@

install-test: $(VENV)/.installed-test

demo: install
	rm -rf $(DEMO_DATA)
	$(BIN)/piyao --data-dir $(DEMO_DATA) demo

# Start both (idempotent: already running is fine); stop with `make services-stop`.
services:
	bash scripts/elasticsearch.sh start
	bash scripts/postgres.sh start
	bash scripts/redis.sh start

services-stop:
	-bash scripts/elasticsearch.sh stop
	-bash scripts/postgres.sh stop
	-bash scripts/redis.sh stop

# Debian's Chromium and a CJK font for the browser tests (Playwright drives it; root installs it once).
browser:
	bash scripts/chromium.sh install

# The Elasticsearch and PostgreSQL tests find the services through these variables.
test: install-test services browser
	PIYAO_TEST_ES_URL=http://127.0.0.1:$(ES_PORT) \
	PIYAO_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:$(PG_PORT)/piyao_test \
	PIYAO_TEST_REDIS_URL=redis://127.0.0.1:$(REDIS_PORT)/0 \
	$(BIN)/python -m pytest --durations=25

clean-demo:
	rm -rf $(DEMO_DATA)
