# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit proto clean install system-deps core-only test-image test-fresh

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	@# xds-protos ships an old copy of opentelemetry/proto (no InstrumentationScope)
	@# over opentelemetry-proto's files; put the real ones back (docs/xds.md).
	$(BIN)/python scripts/fix_otel_proto.py
	touch $(STAMP)

install: $(STAMP)

# The demo installs only what it runs (the `local` extra), in its own venv.
DEMO_VENV  := .venv-demo
DEMO_STAMP := $(DEMO_VENV)/.installed

$(DEMO_STAMP): pyproject.toml
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/pip install --quiet --upgrade pip
	$(DEMO_VENV)/bin/pip install --quiet -e '.[local]'
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(DEMO_VENV)/bin/ecsgrpc demo

# System packages the tests use: installed when possible, else one line and stop.
system-deps:
	@scripts/system_deps.sh

# A venv with only the library's core dependencies: connect() on a static
# target and `ecsgrpc probe` against a real agent work there.
CORE_VENV := .venv-core

core-only: $(STAMP)
	rm -rf $(CORE_VENV)
	$(PYTHON) -m venv $(CORE_VENV)
	$(CORE_VENV)/bin/pip install --quiet .
	$(BIN)/python scripts/core_only_check.py $(CORE_VENV)

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) system-deps
	$(BIN)/pytest -q

test: system-deps lint typecheck unit core-only checkov

# deploy/Dockerfile built and run for real: dockerd (started by the tests, as
# root), a debootstrap base cached in ~/.cache/ecsgrpc, docker-compose.
test-image: $(STAMP)
	@ECSGRPC_SYSTEM_DEPS_IMAGE=1 scripts/system_deps.sh
	$(BIN)/pytest -q -m image tests/image --deselect tests/image/test_fresh_machine.py

# `make test` where its system packages are missing: a container from the same
# debootstrap base (python3 only) gets the working tree; `make system-deps`
# refuses in one line as a plain user, installs with apt-get as root, then
# `make install`, `make lint` and a module that starts dnsmasq run in it.
test-fresh: $(STAMP)
	@ECSGRPC_SYSTEM_DEPS_IMAGE=1 scripts/system_deps.sh
	$(BIN)/pytest -q -s -m image tests/image/test_fresh_machine.py

proto: $(STAMP)
	$(BIN)/python scripts/gen_proto.py

clean:
	rm -rf $(VENV) $(CORE_VENV) $(DEMO_VENV) .pytest_cache .mypy_cache .ruff_cache

# checkov has heavy, conflicting dependencies: it gets its own venv.
CHECKOV_VENV := .venv-checkov
CHECKOV      := $(CHECKOV_VENV)/bin/checkov

$(CHECKOV):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet 'checkov>=3.2,<4'

.PHONY: checkov
# Fails on any failed check; skips must be inline (#checkov:skip=ID:reason).
# --skip-download: no call to the Prisma Cloud API (offline, deterministic).
checkov: $(CHECKOV)
	$(CHECKOV) -d infra/terraform --framework terraform --skip-download --compact --quiet
