# Every target creates .venv and installs what it needs; a fresh clone with only
# python3 can run `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test lint protos interop interop-deps bench bench-quick docs docs-serve \
	wheel-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev,docs,release]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m pyvider_rpcplugin_sync demo

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check pyvider_rpcplugin_sync tests benchmarks protos/generate.py
	$(BIN)/ruff format --check pyvider_rpcplugin_sync tests benchmarks protos/generate.py
	$(BIN)/mypy

protos: $(STAMP)
	$(BIN)/python protos/generate.py

# Debian's go-plugin 1.0.1 toolchain (no-op when present); the Go modules at pinned
# versions (go-plugin 1.8.0/1.6.0 programs, OpenTofu, Terraform providers), built once
# into caches outside the repository (seconds when cached). Then the interop tests
# (Go go-plugin, pyvider-rpcplugin, terraform and tofu).
interop-deps:
	bash tests/interop/install_go_deps.sh
	$(PYTHON) tests/interop/gomodules.py prepare

interop: $(STAMP) interop-deps
	PYVIDER_REQUIRE_INTEROP=1 $(BIN)/python -m pytest tests/interop tests/terraform $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# Under a minute; fails only on gross regressions, confirmed by a re-run.
bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks --quick

# The documentation site in site/; --strict: a broken link or reference fails the build.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# sdist + wheel, twine check, the wheel installed in a fresh venv outside the repo and run.
wheel-check: $(STAMP)
	bash .ci/wheel-check $(BIN)/python

clean:
	rm -rf $(VENV) site .gocache .pytest_cache .mypy_cache .ruff_cache .hypothesis
