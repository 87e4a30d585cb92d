# Two commands on a fresh machine:
#   make run   - install what is missing, seed the demo workspace, serve the app on :8501
#                as the single-user demo: ASSAY_AUTH=none, no sign-in (README "Accounts and sign-in")
#   make test  - install what is missing (incl. Debian packages when root), ruff, the whole pytest suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
REQ_HASH := $(shell cat requirements.txt constraints.txt pyproject.toml | sha1sum | cut -c1-12)
DEV_HASH := $(shell cat requirements-dev.txt constraints.txt | sha1sum | cut -c1-12)
RUNTIME_STAMP := $(VENV)/.runtime-$(REQ_HASH)
DEV_STAMP := $(VENV)/.dev-$(DEV_HASH)
IS_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo yes)

.PHONY: run test install install-dev system-deps system-deps-run postgres lint benchmarks demo clean-workspace

# The single-user demo: sign-in off (everyone acts as an admin) unless ASSAY_AUTH is set.
run: install system-deps-run
	ASSAY_AUTH=$${ASSAY_AUTH-none} $(PY) -m curation demo
	ASSAY_AUTH=$${ASSAY_AUTH-none} $(VENV)/bin/streamlit run app.py --server.headless true --server.port $(PORT)

test: install-dev system-deps postgres
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

install: $(RUNTIME_STAMP)
install-dev: $(RUNTIME_STAMP) $(DEV_STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(RUNTIME_STAMP): requirements.txt constraints.txt pyproject.toml | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt -c constraints.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	rm -f $(VENV)/.runtime-* && touch $@

$(DEV_STAMP): requirements-dev.txt constraints.txt | $(PY)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt -c constraints.txt
	rm -f $(VENV)/.dev-* && touch $@

# Debian packages: bubblewrap (the code sandbox) and chromium (browser tests).
system-deps-run:
	@command -v bwrap >/dev/null || { \
	  if [ "$(IS_ROOT)" = yes ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap; \
	  else echo "note: bubblewrap is missing; code samples will not be run (sudo apt-get install bubblewrap)"; fi; }

system-deps: system-deps-run
	@[ -x /usr/bin/chromium ] || { \
	  if [ "$(IS_ROOT)" = yes ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "note: chromium is missing; browser tests will be skipped (sudo apt-get install chromium)"; fi; }

# PostgreSQL for the store tests: start the local cluster when it is installed but down;
# as root on a machine without one, install it and let loopback connections in (trust),
# the set-up the tests expect. Elsewhere the PostgreSQL tests skip and say why.
postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || { \
	  if [ "$(IS_ROOT)" != yes ]; then echo "note: no PostgreSQL on 127.0.0.1:5432; its store tests will be skipped"; exit 0; fi; \
	  if ! command -v pg_ctlcluster >/dev/null; then \
	    echo "installing PostgreSQL for the store tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	    hba=$$(ls /etc/postgresql/*/main/pg_hba.conf | head -1); \
	    sed -i '1i host all all 127.0.0.1/32 trust' "$$hba"; \
	  fi; \
	  pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -1) main start || true; \
	  pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -1) main reload || true; \
	  psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname = 'test'" 2>/dev/null | grep -q 1 || \
	    psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE test" 2>/dev/null || true; }

lint: install-dev
	$(VENV)/bin/ruff check .

demo: install
	ASSAY_AUTH=$${ASSAY_AUTH-none} $(PY) -m curation demo

benchmarks: install-dev
	@for script in benchmarks/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean-workspace:
	rm -f data/workspace.db data/workspace.db-wal data/workspace.db-shm
