# The commands the README shows. Every target installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv/bin
STACK := stack/boxo

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

up: $(if $(filter 1,$(CONTAINERS)),images)  ## install (first run) and start the whole local stack (CONTAINERS=1: the functions as containers of their images)
	@BOXOFFICE_CONTAINERS=$(CONTAINERS) $(STACK) up

down:  ## stop the local stack (data kept; `stack/boxo down --purge` deletes it)
	@$(STACK) down

status:  ## health of every local service
	@$(STACK) status

verify:  ## check the dev database's invariants (read-only; stack/boxo verify)
	@$(STACK) verify

venv:
	@bash -c 'source stack/lib.sh && source stack/services/python.sh && python_install'

lint: venv  ## ruff (lint + format check), mypy --strict (src/ and functions/), the import contracts
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy
	PYTHONPATH=src $(VENV)/lint-imports --no-cache

fmt: venv  ## format the code
	$(VENV)/ruff check --fix .
	$(VENV)/ruff format .

test: lint up images browser-deps bench-deps  ## run every test (unit, integration, e2e, browser, containers), then check the dev database's invariants
	@set -a && source .state/env && set +a && $(VENV)/pytest --floors tests/floors.toml $(PYTEST_ARGS)
	@$(STACK) verify

images: venv  ## build every function's image (Containerfile; no network in the build; the engine started if none runs): dev.local/boxoffice/<function>:<chart tag>
	@$(STACK) images

browser-deps:  ## what the browser tests need: Debian's chromium and fonts, the storefront's npm packages
	@bash -c 'source stack/lib.sh && bx_apt_install chromium fonts-dejavu-core'
	@storefront/vendor.sh --install

bench-deps: venv  ## the load generators the benchmarks use: vegeta (go install) and oha (cargo install; OpenSSL headers from Debian), built once into the project cache
	@bash -c 'source stack/lib.sh && bx_apt_install libssl-dev pkg-config'
	@$(VENV)/python -c 'from benchmarks.env import ensure_oha, ensure_vegeta; ensure_vegeta(); ensure_oha()'

browser: venv up browser-deps  ## the storefront's browser tests alone (tests/browser; screenshots in artifacts/browser)
	@set -a && source .state/env && set +a && $(VENV)/pytest tests/browser $(PYTEST_ARGS)

unit: venv  ## fast unit tests only (no servers)
	$(VENV)/pytest tests/unit -q --floors tests/floors.toml

lock:  ## re-resolve requirements/*.lock (hashes) from pyproject.toml
	python3 -m venv .cache/uv-venv && .cache/uv-venv/bin/pip install -q uv
	.cache/uv-venv/bin/uv pip compile pyproject.toml --extra dev --generate-hashes \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 -q -o requirements/dev.lock
	.cache/uv-venv/bin/uv pip compile pyproject.toml --generate-hashes \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 -q -o requirements/runtime.lock

.PHONY: help up down status verify venv lint fmt test unit lock images browser-deps browser bench-deps

deploy-check: venv  ## offline deploy checks: helm lint, kubeconform -strict, invariants, image entrypoint
	@bash deploy/tools.sh >/dev/null
	$(VENV)/pytest tests/deploy/test_chart.py tests/deploy/test_frontdoor_chart.py tests/deploy/test_containerfile.py tests/deploy/test_image_entrypoint.py tests/deploy/test_versions.py -q

rehearse:  ## the deployment against a real Kubernetes API server on loopback (first run builds it: ~20 min)
	@bash deploy/rehearse.sh

.PHONY: deploy-check rehearse

alerts-test:  ## promtool: check the alert rules and run their unit tests (helm/boxoffice/rules)
	@bash -c 'source stack/lib.sh && source stack/services/prometheus.sh && prometheus_install'
	/usr/bin/promtool check rules helm/boxoffice/rules/boxoffice-alerts.yaml
	/usr/bin/promtool test rules helm/boxoffice/rules/tests/*.yaml

.PHONY: alerts-test

bench: venv up bench-deps  ## benchmarks (~30 min; quiet machine!): table, report.md, plots in benchmarks/results/<time>/
	@set -a && source .state/env && set +a && $(VENV)/python -m benchmarks $(BENCH_ARGS)

bench-smoke: venv up bench-deps  ## the benchmark harness end to end in ~1 min (tiny sizes, figures meaningless)
	@set -a && source .state/env && set +a && $(VENV)/python -m benchmarks --smoke $(BENCH_ARGS)

.PHONY: bench bench-smoke
