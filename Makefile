# instamojo-elt: every target creates/updates its own virtualenv first; nothing is installed by hand.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Pass-through arguments, e.g. `make sync ARGS="--merchants acme --resources payments"`.
ARGS ?=

.PHONY: help venv test test-fast demo sync transform check docs query sandbox authorize merchants bench bench-sandbox lock clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP) ## create the virtualenv from requirements.lock

test: $(STAMP) ## run the whole test suite (slow and postgres tests included)
	$(PY) -m pytest -m "slow or not slow" -n 2 $(ARGS)

test-fast: $(STAMP) ## run the fast tests only
	$(PY) -m pytest $(ARGS)

demo: $(STAMP) ## the whole job against the local sandbox: OAuth → sync → marts → checks → data/demo.duckdb
	$(PY) -m pipelines demo $(ARGS)

sync: $(STAMP) ## sync every configured merchant, then build the marts and run the checks (ARGS="--merchants acme")
	$(PY) -m pipelines sync $(ARGS)

transform: $(STAMP) ## build the reconciliation marts with dbt: changed merchants only (ARGS="--full-refresh": all)
	$(PY) -m pipelines transform $(ARGS)

check: $(STAMP) ## run the data-quality checks (exit 1 on an error-severity failure)
	$(PY) -m pipelines check $(ARGS)

docs: $(STAMP) ## dbt's documentation of the marts as one offline HTML file: data/dbt-docs/index.html
	$(PY) -m transforms.docs --static data/dbt-docs/index.html

query: $(STAMP) ## run SQL on the warehouse: make query Q="SELECT * FROM instamojo.reconciliation_exceptions"
	@test -n "$(Q)" || { echo 'usage: make query Q="SELECT …" [ARGS="--duckdb-path data/demo.duckdb"]' >&2; exit 2; }
	$(PY) -m pipelines query $(ARGS) "$(Q)"

sandbox: $(STAMP) ## start the Instamojo sandbox on 127.0.0.1 (ARGS="--port 8765 --size demo")
	$(PY) -m instamojo_sandbox $(ARGS)

bench: $(STAMP) ## backfill rows/s vs dlt's defaults and the fetch-only ceiling, memory, latency, marts rebuild (~5 min)
	$(PY) -m pipelines bench $(ARGS)

bench-sandbox: $(STAMP) ## rows/s the sandbox serves: 1,000,000 payments at page size 100 (ARGS="--payments 100000")
	$(PY) -m instamojo_sandbox.bench $(ARGS)

authorize: $(STAMP) ## add a merchant: OAuth2 in the browser, stores its refresh token (MERCHANT=acme ARGS="--no-browser")
	@test -n "$(MERCHANT)" || { echo 'usage: make authorize MERCHANT=<name> [ARGS="--scopes payments:read,payouts:read --no-browser"]' >&2; exit 2; }
	$(PY) -m pipelines authorize "$(MERCHANT)" $(ARGS)

merchants: $(STAMP) ## list merchants, the scopes each granted and when (never a token)
	$(PY) -m pipelines merchants $(ARGS)

lock: ## re-resolve dependencies from pyproject.toml into requirements.lock
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install --quiet --upgrade pip
	.lockenv/bin/pip install --quiet -e '.[test]'
	( echo '# Exact pins for reproducible installs; regenerate with `make lock` after changing pyproject.toml.'; \
	  .lockenv/bin/pip freeze --exclude-editable ) > requirements.lock
	rm -rf .lockenv

clean: ## remove the virtualenv, data files and caches
	rm -rf $(VENV) data .pytest_cache build *.egg-info
