# The two commands a newcomer needs (see README.md):
#   make demo   set up, load the sample papers, send a digest to var/mail, serve the site
#   make test   the whole test suite (SQLite; then PostgreSQL too if DATABASE_URL is set)

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: demo test install install-dev browser serve bench

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# Links in the demo digests point at the port the site is served on.
demo: export SITE_URL ?= http://127.0.0.1:$(PORT)
demo: install
	$(PY) manage.py migrate --no-input
	$(PY) manage.py demo
	@echo "Serving http://127.0.0.1:$(PORT)/ (Ctrl-C to stop). Editors: manage.py createsuperuser, then /admin/"
	$(PY) manage.py runserver 127.0.0.1:$(PORT)

# Headless Chromium for the browser test, from Debian's packages.
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is not installed (sudo apt-get install chromium); browser tests will be skipped"; fi; }

test: install-dev browser
	env -u DATABASE_URL $(PY) -m pytest -m "not postgres" $(PYTEST_ARGS)
	@if [ -n "$$DATABASE_URL" ]; then echo "== again on PostgreSQL: $$DATABASE_URL"; $(PY) -m pytest $(PYTEST_ARGS); fi

bench: install
	$(PY) bench/digests.py
