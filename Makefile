# Every target creates .venv and installs what it needs; a fresh clone with only
# python3 can run `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test test-pythons coverage lint protos interop interop-deps bench \
	bench-quick docs docs-serve wheel-check clean

# The other interpreters CI tests (pyenv's, else python3.X on PATH), each in its own venv.
PYTHONS ?= 3.12 3.13
# What they run: everything but interop (which runs on the main interpreter).
PYTHONS_TESTS ?= tests/unit tests/integration tests/process

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev,docs,release]'
	touch $(STAMP)

install: $(STAMP)

# .venv-3.12, .venv-3.13: the newest pyenv patch release of each, else python3.X.
.venv-%/.installed: pyproject.toml
	@py=$$(ls -d $(HOME)/.pyenv/versions/$*.*/bin/python 2>/dev/null | sort -V | tail -n 1); \
	py=$${py:-$$(command -v python$*)}; \
	if [ -z "$$py" ]; then echo "no Python $* (pyenv install $*, or python$* on PATH)" >&2; exit 1; fi; \
	echo "Python $*: $$py"; \
	rm -rf .venv-$*; $$py -m venv .venv-$*
	.venv-$*/bin/python -m pip install --quiet --upgrade pip
	.venv-$*/bin/python -m pip install --quiet -e '.[test]'
	touch $@

# The unit, integration and process tests on each of $(PYTHONS), one after the other,
# with each interpreter's wall time.
test-pythons: $(foreach v,$(PYTHONS),.venv-$(v)/.installed)
	@for v in $(PYTHONS); do \
		start=$$(date +%s); \
		.venv-$$v/bin/python -m pytest -p no:cacheprovider $(PYTHONS_TESTS) $(PYTEST_ARGS) || exit 1; \
		echo "Python $$v: $$(( $$(date +%s) - start )) s"; \
	done

demo: $(STAMP)
	$(BIN)/python -m pyvider_rpcplugin_sync demo

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The whole suite (PYTEST_ARGS as for `make test`) with branch coverage, subprocesses
# included; the report lists what no test runs, and fails below pyproject's fail_under.
coverage: $(STAMP)
	$(BIN)/coverage erase
	$(BIN)/coverage run -m pytest $(PYTEST_ARGS)
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage report

lint: $(STAMP)
	$(BIN)/ruff check pyvider_rpcplugin_sync tests benchmarks protos/generate.py
	$(BIN)/ruff format --check pyvider_rpcplugin_sync tests benchmarks protos/generate.py
	$(BIN)/mypy
	$(BIN)/pyright

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
	rm -rf $(VENV) $(foreach v,$(PYTHONS),.venv-$(v)) site .coverage .coverage.* htmlcov .gocache .pytest_cache .mypy_cache .ruff_cache .hypothesis
