# evidence-archive: development tasks.  `make` alone lists them.

PYTHON      ?= python3
VENV        ?= .venv
PYTEST_ARGS ?= -q -ra -n 2 --durations=15

STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

.PHONY: help venv deps test-deps test lint format demo clean

# test-deps must finish (python3-venv, PostgreSQL) before the venv is made.
.NOTPARALLEL:

help:
	@echo "evidence-archive tasks:"
	@echo "  make venv       virtualenv in $(VENV) with the package installed editable, with test extras,"
	@echo "                  every dependency at the version pinned in constraints.txt"
	@echo "  make deps       system packages the pipeline needs (ffmpeg, python3-venv)"
	@echo "  make test-deps  deps + PostgreSQL, started and reachable on 127.0.0.1 without password"
	@echo "  make test       run the test suite (PYTEST_ARGS='$(PYTEST_ARGS)')"
	@echo "  make lint       ruff (lint and format check) and mypy over the project's packages"
	@echo "  make format     rewrite the code in the project's format (ruff format, import order)"
	@echo "  make demo       synthetic station inbox and the embedded-default run in demo-data/"
	@echo "  make clean      remove the virtualenv, demo-data/ and caches"
	@echo "Variables: PYTHON=$(PYTHON) VENV=$(VENV) PYTEST_ARGS='$(PYTEST_ARGS)'"

venv: $(STAMP)

# Rebuilt when the packaging files change; a venv without pip (made while python3-venv
# was missing) is thrown away and made again.
$(STAMP): $(wildcard setup.cfg pyproject.toml constraints.txt)
	@if [ ! -x "$(VENV)/bin/python" ] || [ ! -x "$(VENV)/bin/pip" ]; then \
		echo "creating virtualenv $(VENV)"; \
		rm -rf "$(VENV)"; \
		$(PYTHON) -m venv "$(VENV)"; \
	fi
	"$(VENV)/bin/python" -m pip install --quiet --upgrade pip
	"$(VENV)/bin/pip" install -c constraints.txt -e '.[test,lint]'
	@touch "$@"

deps:
	PYTHON="$(PYTHON)" bash .ci/system-deps.sh

test-deps:
	PYTHON="$(PYTHON)" bash .ci/system-deps.sh --test
	bash .ci/ensure-postgres.sh

test: test-deps venv
	"$(VENV)/bin/python" -m pytest $(PYTEST_ARGS)

LINTED := archive catalog config ingest verify tests bench

lint: deps venv
	"$(VENV)/bin/ruff" check $(LINTED)
	"$(VENV)/bin/ruff" format --check $(LINTED)
	"$(VENV)/bin/mypy"

format: deps venv
	"$(VENV)/bin/ruff" check --select I --fix $(LINTED)
	"$(VENV)/bin/ruff" format $(LINTED)

demo: deps venv
	VENV="$(VENV)" bash .ci/demo.sh

clean:
	rm -rf "$(VENV)" demo-data .pytest_cache build dist *.egg-info
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
