# Rateline: the few commands everybody needs. Needs only Python 3.11+ on the PATH (as python3,
# or PYTHON=/path/to/python3.11); everything else is installed into .tools/ and .venv/.
#
#   make run     start the whole system on embedded PostgreSQL + NATS (Ctrl-C stops it)
#   make test    the test suite (unit, service and end-to-end tests)
#   make lint    ruff, mypy, import boundaries, Kubernetes manifests
#   make bench   the benchmarks in bench/
#   make clean   remove .venv and .tools;  make reset  also removes the local data (.rateline)

PYTHON   ?= python3
UV_VERSION := 0.13.9
TOOLS    := .tools
UV       := $(TOOLS)/bin/uv
VENV     := .venv
PY       := $(VENV)/bin/python
DATA_DIR ?= .rateline
STAMP    := $(VENV)/.uv-sync-stamp
SRC_DIRS := libs/devstack/src gateway/src $(wildcard services/*/src)

# uv must not pick up a Python of its own or a venv the caller happened to activate.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
unexport VIRTUAL_ENV

.DEFAULT_GOAL := help
.PHONY: help bootstrap run stop test lint lint-k8s bench clean reset

help:
	@sed -n 's/^#   //p' Makefile

bootstrap: $(STAMP)

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Recreated only when the lock (or a package's metadata) changed.
$(STAMP): uv.lock pyproject.toml $(wildcard libs/*/pyproject.toml gateway/pyproject.toml services/*/pyproject.toml) | $(UV)
	$(UV) sync --all-packages --frozen --python $(PYTHON)
	@touch $@

run: bootstrap
	$(VENV)/bin/rateline-stack run --data-dir $(DATA_DIR)

stop: bootstrap
	$(VENV)/bin/rateline-stack stop --data-dir $(DATA_DIR)

test: bootstrap
	$(PY) -m pytest -q

lint: bootstrap lint-k8s
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy libs/shared/src
	$(VENV)/bin/mypy libs/rating/src
	@set -e; for dir in $(SRC_DIRS); do echo "mypy $$dir"; $(VENV)/bin/mypy $$dir; done
	$(VENV)/bin/lint-imports

lint-k8s: bootstrap
	$(PY) -m rateline_devstack.manifests deploy/k8s docker-compose.yml

bench: bootstrap
	@if [ -f bench/__main__.py ]; then \
		$(PY) -m bench; \
	else \
		found=0; for f in bench/*.py; do [ -f "$$f" ] || continue; found=1; echo "== $$f"; $(PY) "$$f" || exit 1; done; \
		[ $$found = 1 ] || echo "no benchmarks in bench/ yet"; \
	fi

clean:
	rm -rf $(VENV) $(TOOLS)

reset: clean
	rm -rf $(DATA_DIR)
