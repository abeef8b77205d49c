# The two commands of the README: `make demo` and `make test`. Both set everything up themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

RUNTIME_VENV ?= .venv-runtime

.PHONY: demo test lint typecheck layers install install-runtime lock clean system-packages node-packages services-up services-down pg pg-stop

# Every package comes from a hash-locked file (requirements/, see docs/security.md "Supply
# chain"): first pip and the build backend (pip.lock), then the dependencies, then jitadmin itself
# from this directory with no index and no build isolation, so nothing unhashed is downloaded.
# $(call locked_install,VENV,LOCK,EXTRA_PIP_FLAGS)
define locked_install
	test -x $(1)/bin/python || $(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install --quiet --require-hashes -r requirements/pip.lock
	$(1)/bin/python -m pip install --quiet --require-hashes -r $(2)
	$(1)/bin/python -m pip install --quiet --no-index --no-deps --no-build-isolation $(3) .
endef

# The development environment (make demo/test/lint...): runtime and dev tools, editable.
$(STAMP): pyproject.toml requirements/pip.lock requirements/dev.lock
	$(call locked_install,$(VENV),requirements/dev.lock,-e)
	touch $(STAMP)

install: $(STAMP)

# A production-style install with no test or development tool in it:
# `make install-runtime RUNTIME_VENV=/opt/jitadmin` (default .venv-runtime).
install-runtime:
	$(call locked_install,$(RUNTIME_VENV),requirements/runtime.lock,)

# Regenerates requirements/*.lock from pyproject.toml (scripts/lock.sh; UPGRADE=1 to upgrade).
lock: $(STAMP)
	bash scripts/lock.sh

demo: $(STAMP)
	$(BIN)/jitadmin demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

# Debian's Chromium for the web tests and screenshots (Playwright never downloads a browser).
CHROMIUM_INSTALL := command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

# Debian packages the tests need (real services, not stand-ins); installed only when missing.
system-packages:
	$(CHROMIUM_INSTALL)
	bash scripts/samba-dc.sh install

# The OpenID Provider of the OIDC sign-in tests (tests/oidc_provider: npm's oidc-provider at the
# version package-lock.json pins, with its integrity hashes); installed only when missing or
# older than the lock. No install scripts run. node_modules/ is never committed.
OIDC_PROVIDER := tests/oidc_provider
$(OIDC_PROVIDER)/node_modules/.package-lock.json: $(OIDC_PROVIDER)/package-lock.json
	command -v npm >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm)
	npm ci --prefix $(OIDC_PROVIDER) --ignore-scripts --no-audit --no-fund

node-packages: $(OIDC_PROVIDER)/node_modules/.package-lock.json

# Start every service the tests need on loopback; stopped again by services-down.
# The second DC joins the first's domain (tests/contract/ad/test_ad_two_dcs.py).
# Its own address and state directory, whatever SAMBA_DC_IP/SAMBA_DC_DIR say about the first.
SECOND_DC := SAMBA_DC_JOIN_DIR=$${SAMBA_DC_DIR:-/var/tmp/jitadmin-samba-dc-$${SAMBA_DC_IP:-127.0.0.77}} \
	SAMBA_DC_IP=127.0.0.78 SAMBA_DC_DIR=/var/tmp/jitadmin-samba-dc-127.0.0.78 SAMBA_DC_HOST=DC2 \
	SAMBA_DC_ENV_FILE=$(CURDIR)/.run/samba-dc2.env

services-up: system-packages node-packages $(STAMP)
	bash scripts/postgres.sh start
	bash scripts/samba-dc.sh start
	$(SECOND_DC) bash scripts/samba-dc.sh start

services-down:
	-$(SECOND_DC) bash scripts/samba-dc.sh stop
	-bash scripts/samba-dc.sh stop
	bash scripts/postgres.sh stop

# Static security checks: bandit over src (high severity fails), the lock files' checks
# (pinned, hashed, no test tool in runtime.lock, versions agree) and pip-audit over the
# installed dependencies (a known vulnerability fails; see docs/security.md for when the
# vulnerability service cannot be reached).
.PHONY: security
security: $(STAMP)
	$(BIN)/bandit -q -r src -lll
	$(BIN)/pytest -q -p no:cacheprovider tests/security/test_supply_chain.py
	$(BIN)/python scripts/audit_deps.py

test: lint typecheck layers security
	$(MAKE) services-up
	status=0; $(BIN)/pytest || status=$$?; $(MAKE) services-down; exit $$status

# A PostgreSQL server on loopback, as the tests use it (`make pg-stop` stops it).
pg:
	bash scripts/postgres.sh start

pg-stop:
	bash scripts/postgres.sh stop

# PNGs of the web console for the README (docs/screenshots/), taken in Debian's Chromium.
.PHONY: screenshots
screenshots: $(STAMP)
	$(CHROMIUM_INSTALL)
	$(BIN)/python scripts/screenshots.py

# A Samba AD DC for trying On Prem AD by hand, on its own address (the tests' DC is another):
# starts it, then connects the running demo's Pedro Aviary to it. `make dc-stop` stops it.
DEMO_DC := SAMBA_DC_IP=127.0.0.76 SAMBA_DC_ENV_FILE=$(CURDIR)/.run/samba-dc-demo.env
.PHONY: dc dc-stop
dc: $(STAMP)
	$(DEMO_DC) bash scripts/samba-dc.sh start
	@if [ ! -f .demo/secret.key ]; then echo "Start the demo (make demo), then run make dc again."; \
	else set -a; . .run/samba-dc-demo.env; set +a; \
	  export JITADMIN_DATABASE_URL=sqlite:///$(CURDIR)/.demo/jitadmin.db \
	    JITADMIN_SECRET_KEY_FILE=$(CURDIR)/.demo/secret.key JITADMIN_EGRESS_ALLOW=127.0.0.0/8; \
	  $(BIN)/jitadmin connections set-ad pedroaviary --url "$$SAMBA_DC_URL" \
	    --bind-user "$$SAMBA_DC_ADMIN_UPN" --bind-password-file "$$SAMBA_DC_ADMIN_PASSWORD_FILE" \
	    --ca-pem-file "$$SAMBA_DC_CA_FILE" && \
	  $(BIN)/jitadmin connections test pedroaviary ad; fi

dc-stop:
	$(DEMO_DC) bash scripts/samba-dc.sh stop

clean:
	rm -rf $(VENV) $(RUNTIME_VENV) .demo .mypy_cache .ruff_cache .pytest_cache

# Benchmarks against the emulators (bench/, not part of `make test`); rewrites docs/benchmarks.md.
# The full storm matrix takes hours on 2 cores; `make bench-quick` is a smoke run with small N.
.PHONY: bench bench-quick
bench: $(STAMP)
	$(BIN)/python -m bench.run

bench-quick: $(STAMP)
	$(BIN)/python -m bench.run --quick
