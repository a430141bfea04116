# policyflow: `make up` runs the whole stack, `make test` the whole suite. Both set up first.
SHELL := /bin/bash
PYTHON ?= python3.11
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
VENV := .venv
STAMP := $(VENV)/.synced

.PHONY: setup up test test-fast lint bench bench-quick docs clean

$(STAMP): pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || test -x $(UV) || $(PYTHON) -m pip install --user --quiet uv
	$(UV) sync --frozen --python 3.11
	@touch $(STAMP)

# The OpenID provider the sign-on tests start (tests/oidc): from its committed lockfile, when Node.js is here.
OIDC_STAMP := tests/oidc/node_modules/.package-lock.json

$(OIDC_STAMP): tests/oidc/package.json tests/oidc/package-lock.json
	@if command -v npm >/dev/null 2>&1; then cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error; \
	else echo "npm not found: the single sign-on tests will be skipped"; fi

# Debian's libraries for WeasyPrint and a Chinese font (the bulletin's PDF), when apt-get can install them.
setup: $(STAMP) $(OIDC_STAMP)
	@bash deploy/local/pdf-packages.sh

up: setup
	$(UV) run --frozen python -m deploy.local.up

test: setup
	$(UV) run --frozen pytest -q; rc=$$?; [ $$rc -eq 5 ] && echo 'no tests collected' && rc=0; exit $$rc

test-fast: setup
	$(UV) run --frozen pytest -q -m "unit"

# The same checks as .pre-commit-config.yaml; mypy's paths and --strict come from pyproject.toml.
LINT_PATHS := contracts workflows services deploy tests bench

lint: setup
	$(UV) run --frozen ruff check $(LINT_PATHS)
	$(UV) run --frozen ruff format --check $(LINT_PATHS)
	$(UV) run --frozen mypy

bench: setup
	$(UV) run --frozen python -m bench

bench-quick: setup
	$(UV) run --frozen python -m bench --quick

docs: setup
	$(UV) run --frozen policyflow docs export docs

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
