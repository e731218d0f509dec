# audiolift: the two commands a new user needs are `make demo` and `make test`.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV      ?= .venv
SAM_VENV  ?= .venv-sam
PY        := $(VENV)/bin/python
STATE_DIR ?= .state
ENV       ?= dev
export PYTHONPATH := $(CURDIR)/layers/core:$(CURDIR)/functions/api:$(CURDIR)/functions/processor:$(CURDIR)/functions/sweeper:$(CURDIR)/devstack:$(CURDIR)/clients/python
export PIP_DISABLE_PIP_VERSION_CHECK := 1

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# --- environments ------------------------------------------------------------------
$(VENV)/.installed: pyproject.toml devstack/package-lock.json
	test -x $(PY) || "$$(scripts/find_python.sh 3.12)" -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@# dynalite: the local stack's jobs table, kept on disk (Node.js 20+)
	command -v npm >/dev/null || { apt-get update && apt-get install -y --no-install-recommends nodejs npm; }
	npm ci --prefix devstack --no-audit --no-fund --loglevel=error
	touch $@

$(SAM_VENV)/.installed: requirements-sam.txt
	test -x $(SAM_VENV)/bin/python || "$$(scripts/find_python.sh 3.12)" -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install -q -r requirements-sam.txt
	touch $@

venv: $(VENV)/.installed  ## create the Python environment from pyproject.toml

sam-venv: $(SAM_VENV)/.installed  ## the SAM CLI, in its own environment

browser-deps:  ## Debian's Chromium and the browser tests' packages
	scripts/install_browser.sh

# --- the main job ------------------------------------------------------------------
demo: venv  ## run the pipeline locally: upload a sample recording and print its analysis
	$(PY) -m audiolift_devstack.demo --state-dir $(STATE_DIR)

dev: venv  ## start the local stack and keep it running (Ctrl-C stops it)
	$(PY) -m audiolift_devstack up --state-dir $(STATE_DIR)

# --- AWS ---------------------------------------------------------------------------
build: venv sam-venv  ## sam build for ENV=dev|prod (its Architecture), with the Lambda runtime's Python
	SAM=$(SAM_VENV)/bin/sam PY=$(PY) scripts/sam_deploy.sh --build-only $(ENV)

deploy: venv sam-venv  ## build, then sam deploy ENV=dev|prod from samconfig.toml (guided on first use or GUIDED=1)
	SAM=$(SAM_VENV)/bin/sam PY=$(PY) GUIDED=$(GUIDED) scripts/sam_deploy.sh $(ENV)

# --- checks ------------------------------------------------------------------------
lint: venv  ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy layers/core functions devstack clients/python tests bench scripts

# Unit tests are independent (moto in process, free ports): two workers, one per core of
# the CI machine, halve their time. The live-stack tests run one at a time.
UNIT_WORKERS ?= 2

unit: venv  ## unit tests (moto in process)
	$(VENV)/bin/pytest -q -n $(UNIT_WORKERS) tests/unit

integration: venv  ## tests against live local servers (moto server, SeaweedFS)
	$(VENV)/bin/pytest -q tests/integration

browser: venv browser-deps  ## the browser page in headless Chromium
	$(VENV)/bin/pytest -q tests/browser

sam-check: venv sam-venv  ## cfn-lint (source and translated), sam validate, sam build, built-function smoke tests
	SAM=$(SAM_VENV)/bin/sam PY=$(PY) scripts/sam_checks.sh

test: venv sam-venv browser-deps lint  ## everything CI runs
	$(VENV)/bin/pytest -q -n $(UNIT_WORKERS) tests/unit
	$(VENV)/bin/pytest -q tests --ignore=tests/browser --ignore=tests/unit
	@# Its own run: Playwright's sync API keeps an event loop running on the main
	@# thread for the session, which Mangum's handler (run_until_complete) cannot share.
	$(VENV)/bin/pytest -q tests/browser
	SAM=$(SAM_VENV)/bin/sam PY=$(PY) scripts/sam_checks.sh

bench: venv  ## benchmarks (slow; print ratios against peers measured in the same run)
	command -v ffmpeg >/dev/null || { apt-get update && apt-get install -y --no-install-recommends ffmpeg; }
	$(PY) bench/run_all.py $(BENCH_ARGS)

bench-quick: ## the benchmarks at small sizes (checks that they run)
	$(MAKE) bench BENCH_ARGS=--quick

clean:  ## remove build output and local state (not the environments)
	rm -rf .aws-sam $(STATE_DIR) .pytest_cache .mypy_cache .ruff_cache

.PHONY: help venv sam-venv browser-deps demo dev build deploy lint unit integration browser sam-check test bench bench-quick clean
