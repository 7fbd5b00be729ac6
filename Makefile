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
	$(PY) -m pip install --quiet -c constraints.txt 'genkit==0.12.0' 'mcp==1.30.0' 'tokenlearn-static-model==0.1.1' maturin pytest pytest-asyncio pytest-timeout hypothesis ruff mypy
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

# JS Genkit's dev-local-vectorstore (pinned by package-lock.json): the vector store benchmark's baseline.
DEV_LOCAL_VECTORSTORE := tools/dev-local-vectorstore/node_modules/.installed
$(DEV_LOCAL_VECTORSTORE): tools/dev-local-vectorstore/package.json tools/dev-local-vectorstore/package-lock.json
	cd tools/dev-local-vectorstore && npm_config_cache="$$PWD/.npm-cache" npm ci --no-audit --no-fund --loglevel=error
	touch $@

.PHONY: dev-local-vectorstore
dev-local-vectorstore: $(DEV_LOCAL_VECTORSTORE) ## Install JS dev-local-vectorstore for the vector store benchmark

# pgvector for the machine's PostgreSQL 15 (Debian 12 has no package for it), built from
# Debian's trixie source package; needs root, idempotent (rag.md §4).
.PHONY: pgvector
pgvector: ## Build and install pgvector for PostgreSQL 15 (root; idempotent)
	tools/install_pgvector.sh

# chromadb, for the Chroma store tests (the `chroma` extra), pinned.
VECTORSTORE_DEPS := $(VENV)/.vectorstores
$(VECTORSTORE_DEPS): $(VENV)/.installed constraints.txt
	$(PY) -m pip install --quiet -c constraints.txt 'chromadb==1.5.9'
	touch $@

# The real Genkit CLI from npm (pinned by package-lock.json), for the dev-server tests
# (`genkit start -- python app.py`, `genkit flow:run`).
GENKIT_CLI := tools/genkit-cli/node_modules/.installed
$(GENKIT_CLI): tools/genkit-cli/package.json tools/genkit-cli/package-lock.json
	cd tools/genkit-cli && npm_config_cache="$$PWD/.npm-cache" npm ci --no-audit --no-fund --loglevel=error
	touch $@

.PHONY: genkit-cli
genkit-cli: $(GENKIT_CLI) ## Install the npm genkit CLI used by the dev-server tests

.PHONY: build-dev
build-dev: install ## Build the native module (debug) into .venv
	$(BIN)/maturin develop --quiet

.PHONY: build-release
build-release: install ## Build the native module (release) into .venv
	$(BIN)/maturin develop --quiet --release

.PHONY: demo
demo: build-dev ## Run the demo: a persisted two-thread chat, reloaded by a second process
	$(PY) examples/chat_demo.py

.PHONY: demo-rag
demo-rag: build-dev ## Run the RAG demo: questions answered over a bundled corpus, all offline
	$(PY) examples/rag_demo.py

.PHONY: lint-rust
lint-rust: install ## cargo fmt --check and clippy -D warnings
	cargo fmt --all -- --check
	cargo clippy --all-targets --quiet -- -D warnings

.PHONY: lint-python
lint-python: build-dev $(VECTORSTORE_DEPS) ## ruff, mypy --strict and stubtest of the native stubs
	$(BIN)/ruff check python tests benches examples
	$(BIN)/ruff format --check python tests benches examples
	$(BIN)/mypy
	$(PY) -m mypy.stubtest genkit_parity._native

.PHONY: lint
lint: lint-rust lint-python ## All linters

# The Redis and PostgreSQL the store tests use: started only when not already answering
# (the commands of the machine image; idempotent, never restarts a running server).
.PHONY: services
services: ## Start the local Redis and PostgreSQL if they are not running
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || \
		redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
			--dir /var/lib/redis --logfile /var/log/redis/ci.log
	@pg_isready -q -h 127.0.0.1 -p 5432 || \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@for i in $$(seq 50); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 && exit 0; sleep 0.2; done; \
		echo "Redis or PostgreSQL did not come up" >&2; exit 1

.PHONY: test-rust
test-rust: install services pgvector ## Rust unit tests
	cargo test --quiet

.PHONY: test-python
test-python: build-dev services pgvector $(VECTORSTORE_DEPS) $(TELEMETRY_SERVER) $(GENKIT_CLI) ## The pytest suite
	$(PY) -m pytest -q -p no:cacheprovider

.PHONY: test-upstream
test-upstream: build-dev ## genkit 0.12.0's own test suite with genkit-parity in place (swapped, then extend())
	$(PY) -m pip install --quiet -c constraints.txt 'genkit-openai==0.12.0' 'genkit-google-genai==0.12.0'
	$(PY) tools/upstream/run_suite.py --modes parity,extend

.PHONY: test
test: lint test-rust test-python test-upstream ## Everything: lints, Rust tests, pytest, genkit's own suite

# numpy is measured at its best: without the OpenBLAS overrides some machines set.
.PHONY: bench
bench: build-release services pgvector $(TELEMETRY_SERVER) $(DEV_LOCAL_VECTORSTORE) ## Side-by-side benchmarks vs genkit 0.12; writes benches/results.md
	$(PY) -m pip install --quiet -c constraints.txt jiter numpy faiss-cpu threadpoolctl redis 'psycopg[binary]' 'pgvector==0.5.1' 'chromadb==1.5.9'
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) benches/run.py

.PHONY: clean
clean: ## Remove build outputs and the virtualenv
	cargo clean
	rm -rf $(VENV) .genkit-parity

.PHONY: help
help: ## This list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'
