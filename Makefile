# instamojo-elt: every target creates/updates its own virtualenv first; nothing is installed by hand.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Values from the command line: pass-through arguments (`make sync ARGS="--merchants acme"`), a
# merchant's name (`make authorize MERCHANT=acme`) and SQL (`make query Q="SELECT …"`). They reach
# the commands through the environment exactly as typed: make does not expand them (`$(value …)`)
# and the shell does not read them as code ("$$MERCHANT" is one word; $$ARGS is split into words,
# with globbing off, but never run).
override ARGS := $(value ARGS)
override MERCHANT := $(value MERCHANT)
override Q := $(value Q)
override SHARD_ARGS := $(value SHARD_ARGS)
export ARGS MERCHANT Q SHARD_ARGS
RUN := set -f; $(PY)

.PHONY: help venv browser lint test test-fast demo sync transform check report docs query sandbox dagster authorize merchants bench bench-sandbox bench-merchants bench-pii forget rewrite-pii lock clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

venv: $(STAMP) ## create the virtualenv from requirements.lock

# Headless Chromium for the browser tests: Debian's chromium and chromium-driver, installed with
# apt-get when missing (a no-op when present); nothing downloads a browser of its own.
CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver

browser: ## install headless Chromium for the browser tests (Debian's chromium + chromium-driver) when missing
	@if [ -x $(CHROMIUM) ] && [ -x $(CHROMEDRIVER) ]; then exit 0; fi; \
	echo "installing Debian's chromium and chromium-driver (apt-get) for the browser tests ..."; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get install -y -q --no-install-recommends chromium chromium-driver >/dev/null 2>&1 \
	  || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium chromium-driver; } \
	  || { echo "error: could not install chromium and chromium-driver with apt-get (it needs root and Debian's" \
	            "package lists); the browser tests need $(CHROMIUM) and $(CHROMEDRIVER)." >&2; exit 1; }; \
	test -x $(CHROMIUM) && test -x $(CHROMEDRIVER) \
	  || { echo "error: apt-get finished but $(CHROMIUM) or $(CHROMEDRIVER) is missing" >&2; exit 1; }

test: $(STAMP) browser lint ## lint, then the whole test suite (slow and postgres tests included)
	$(RUN) -m pytest -m "slow or not slow" -n 2 --dist worksteal $$ARGS

lint: $(STAMP) ## ruff and mypy over the whole tree (configured in pyproject.toml)
	$(PY) -m ruff check .
	$(PY) -m mypy

test-fast: $(STAMP) ## run the fast tests only
	$(RUN) -m pytest $$ARGS

demo: $(STAMP) ## the whole job against the local sandbox: OAuth → sync → marts → checks → report → data/demo.duckdb
	$(RUN) -m pipelines demo $$ARGS

sync: $(STAMP) ## sync every configured merchant, then build the marts and run the checks (ARGS="--merchants acme")
	$(RUN) -m pipelines sync $$ARGS

transform: $(STAMP) ## build the reconciliation marts with dbt: changed merchants only (ARGS="--full-refresh": all)
	$(RUN) -m pipelines transform $$ARGS

check: $(STAMP) ## run the data-quality checks (exit 1 on an error-severity failure)
	$(RUN) -m pipelines check $$ARGS

report: $(STAMP) ## write the offline HTML reconciliation report, data/report/index.html (ARGS="--merchants acme --from 2024-11-01")
	$(RUN) -m pipelines report $$ARGS

docs: $(STAMP) ## dbt's documentation of the marts as one offline HTML file: data/dbt-docs/index.html
	$(RUN) -m transforms.docs --static data/dbt-docs/index.html

query: $(STAMP) ## run SQL on the warehouse: make query Q="SELECT * FROM instamojo.reconciliation_exceptions"
	@test -n "$$Q" || { echo 'usage: make query Q="SELECT …" [ARGS="--duckdb-path data/demo.duckdb"]' >&2; exit 2; }
	$(RUN) -m pipelines query $$ARGS "$$Q"

sandbox: $(STAMP) ## start the Instamojo sandbox on 127.0.0.1 (ARGS="--port 8765 --size demo")
	$(RUN) -m instamojo_sandbox $$ARGS

bench: $(STAMP) ## backfill rows/s, interleaved: vs the fetch-only ceiling, a careful dlt peer, dlt's defaults; Postgres; memory, latency; the marts, full and incremental (~13 min on a shared 2-core machine)
	$(RUN) -m pipelines bench $$ARGS

bench-merchants: $(STAMP) ## 1,000 merchants in one sync vs the per-merchant engine, then through Dagster: 1 vs 2 shards, hourly 1 vs 4 shards under one app limit (~20 min; ARGS="--merchants 100" SHARD_ARGS="--merchants 100")
	$(RUN) -m pipelines bench-merchants $$ARGS
	$(RUN) -m orchestration.bench $${SHARD_ARGS:---merchants 1000 --days 30 --payments-per-day 20}

bench-sandbox: $(STAMP) ## rows/s the sandbox serves: 1,000,000 payments at page size 100 (ARGS="--payments 100000")
	$(RUN) -m instamojo_sandbox.bench $$ARGS

bench-pii: $(STAMP) ## what pseudonymizing personal fields costs on the Arrow fast path (100,000 payments; ARGS="--payments 20000")
	$(RUN) -m pipelines.bench_pii $$ARGS

dagster: $(STAMP) ## Dagster's UI on 127.0.0.1:3000: shards, marts, checks, schedules (the demo's sandbox when nothing is configured)
	$(RUN) -m orchestration.dev $$ARGS

authorize: $(STAMP) ## add a merchant: OAuth2 in the browser, stores its refresh token (MERCHANT=acme ARGS="--no-browser")
	@test -n "$$MERCHANT" || { echo 'usage: make authorize MERCHANT=<name> [ARGS="--scopes payments:read,payouts:read --no-browser"]' >&2; exit 2; }
	$(RUN) -m pipelines authorize "$$MERCHANT" $$ARGS

forget: $(STAMP) ## erase one merchant: rows, marts, state, load packages, token (MERCHANT=acme ARGS="--yes")
	@test -n "$$MERCHANT" || { echo 'usage: make forget MERCHANT=<name> [ARGS="--yes --destination postgres"]' >&2; exit 2; }
	$(RUN) -m pipelines forget "$$MERCHANT" $$ARGS

rewrite-pii: $(STAMP) ## apply [sources.instamojo.personal_data] to the personal fields already stored (no re-download)
	$(RUN) -m pipelines rewrite-pii $$ARGS

merchants: $(STAMP) ## list merchants, the scopes each granted and when (never a token)
	$(RUN) -m pipelines merchants $$ARGS

lock: ## re-resolve dependencies from pyproject.toml into requirements.lock
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install --quiet --upgrade pip
	.lockenv/bin/pip install --quiet -e '.[test,dagster]'
	( echo '# Exact pins for reproducible installs; regenerate with `make lock` after changing pyproject.toml.'; \
	  .lockenv/bin/pip freeze --exclude-editable ) > requirements.lock
	rm -rf .lockenv

clean: ## remove the virtualenv, data files and caches
	rm -rf $(VENV) data .pytest_cache build *.egg-info
