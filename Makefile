# genkit-parity developer commands. Each target sets up what it needs (a virtualenv in
# .venv with the pinned dependencies, and the native module built into it).
.DEFAULT_GOAL := help
SHELL := /bin/bash

VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(PATH)

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt 'genkit==0.12.0' 'mcp==1.30.0' maturin pytest pytest-asyncio pytest-timeout hypothesis ruff mypy
	touch $@

.PHONY: install
install: $(VENV)/.installed ## Create .venv with the pinned dependencies

# The real Genkit telemetry server from npm (pinned by package-lock.json), for the tracing
# tests and benchmarks; npm's cache stays inside the folder.
TELEMETRY_SERVER := tools/telemetry-server/node_modules/.installed
$(TELEMETRY_SERVER): tools/telemetry-server/package.json tools/telemetry-server/package-lock.json
	cd tools/telemetry-server && npm_config_cache="$$PWD/.npm-cache" npm ci --no-audit --no-fund --loglevel=error
	touch $@

.PHONY: telemetry-server
telemetry-server: $(TELEMETRY_SERVER) ## Install the npm telemetry server used by tests and benchmarks

.PHONY: build-dev
build-dev: install ## Build the native module (debug) into .venv
	$(BIN)/maturin develop --quiet

.PHONY: build-release
build-release: install ## Build the native module (release) into .venv
	$(BIN)/maturin develop --quiet --release

.PHONY: demo
demo: build-dev ## Run the demo: a persisted two-thread chat, reloaded by a second process
	$(PY) examples/chat_demo.py

.PHONY: lint-rust
lint-rust: install ## cargo fmt --check and clippy -D warnings
	cargo fmt --all -- --check
	cargo clippy --all-targets --quiet -- -D warnings

.PHONY: lint-python
lint-python: build-dev ## ruff, mypy --strict and stubtest of the native stubs
	$(BIN)/ruff check python tests benches examples
	$(BIN)/ruff format --check python tests benches examples
	$(BIN)/mypy
	$(PY) -m mypy.stubtest genkit_parity._native

.PHONY: lint
lint: lint-rust lint-python ## All linters

.PHONY: test-rust
test-rust: install ## Rust unit tests
	cargo test --quiet

.PHONY: test-python
test-python: build-dev $(TELEMETRY_SERVER) ## The pytest suite
	$(PY) -m pytest -q -p no:cacheprovider

.PHONY: test-upstream
test-upstream: build-dev ## genkit 0.12.0's own test suite with genkit-parity in place (swapped, then extend())
	$(PY) -m pip install --quiet -c constraints.txt 'genkit-openai==0.12.0' 'genkit-google-genai==0.12.0'
	$(PY) tools/upstream/run_suite.py --modes parity,extend

.PHONY: test
test: lint test-rust test-python test-upstream ## Everything: lints, Rust tests, pytest, genkit's own suite

.PHONY: bench
bench: build-release $(TELEMETRY_SERVER) ## Side-by-side benchmarks vs genkit 0.12; writes benches/results.md
	$(PY) -m pip install --quiet -c constraints.txt jiter
	$(PY) benches/run.py

.PHONY: clean
clean: ## Remove build outputs and the virtualenv
	cargo clean
	rm -rf $(VENV) .genkit-parity

.PHONY: help
help: ## This list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'
