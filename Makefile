# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit proto clean install test-image

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ecsgrpc demo

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts $(wildcard bench)
	$(BIN)/ruff format --check src tests scripts $(wildcard bench)

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck unit checkov

# deploy/Dockerfile built and run for real: dockerd (started by the tests, as
# root), a debootstrap base cached in ~/.cache/ecsgrpc, docker-compose.
test-image: $(STAMP)
	$(BIN)/pytest -q -m image tests/image

proto: $(STAMP)
	$(BIN)/python scripts/gen_proto.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

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
