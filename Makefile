# The README's commands. Each sets everything up on a fresh machine first.
#   make demo   set up (with JupyterLab), explain demo images with every method (a table and
#               out/methods.png), then open JupyterLab on the quickstart notebook, in a
#               working copy of notebooks/ under out/notebooks/ (the tracked ones stay clean).
#               HEADLESS=1: open no browser (servers); IP=, PORT= where to listen.
#   make test   set up (with the test extras), lint and type-check, then run every test
#   make bench  set up, then compare speed with Captum / pytorch-grad-cam and the floor
#   make screenshot  refresh docs/img/widget_demo.png (the README's) from the browser test
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check -c constraints.txt

.PHONY: setup setup-lab setup-test demo lint test bench clean chromium js-test widget-js screenshot

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(VENV)/bin/python
	$(PIP) torch==2.14.1 torchvision==0.29.1
	touch $@

$(VENV)/.core: pyproject.toml constraints.txt $(VENV)/.torch
	$(PIP) -e .
	touch $@

$(VENV)/.test: pyproject.toml constraints.txt $(VENV)/.core
	$(PIP) -e ".[test]"
	touch $@

$(VENV)/.lab: pyproject.toml constraints.txt $(VENV)/.core
	$(PIP) -e ".[lab]"
	touch $@

setup: $(VENV)/.core
setup-lab: $(VENV)/.lab
setup-test: $(VENV)/.test

# The widget's JavaScript bundle (pip install -e . builds it too when npm is found; this makes
# sure, and rebuilds after edits to js/src).
widget-js: saliency_widgets/static/widget.js
# (after the pip install, whose build step may run npm in js/ too)
saliency_widgets/static/widget.js: js/package.json js/package-lock.json $(shell find js/src -type f) \
                                   | $(VENV)/.core
	cd js && npm ci --no-audit --no-fund && npm run build

# Lab saves outputs into the notebooks it runs, so it runs copies: notebooks missing from
# out/notebooks/ are copied there, and existing copies (your edits) are kept.
WORK := out/notebooks
NOTEBOOK ?= 01_quickstart.ipynb
IP ?= 127.0.0.1
PORT ?= 8888
LAB_FLAGS = --ip=$(IP) --port=$(PORT) $(if $(filter 1 yes true,$(HEADLESS)),--no-browser) \
            $(if $(filter 0,$(shell id -u)),--allow-root)

demo: setup-lab widget-js
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) scripts/demo_grid.py --out out/methods.png
	@mkdir -p $(WORK) && for f in notebooks/*.ipynb; do \
	  test -e "$(WORK)/$${f##*/}" || cp "$$f" $(WORK)/; done
	@echo "Starting JupyterLab on $(WORK)/$(NOTEBOOK): open the URL it prints below (with its token)."
	@echo "Stop it with Ctrl-C (twice)."
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=. --LabApp.default_url=/lab/tree/$(WORK)/$(NOTEBOOK) $(LAB_FLAGS)

# The README's screenshot: the quickstart widget as the browser test drew it.
screenshot: setup-test chromium widget-js
	SW_E2E_REQUIRED=1 $(PY) -m pytest -q tests/e2e/test_demo_notebook.py
	mkdir -p docs/img && cp out/e2e/demo_widget.png docs/img/widget_demo.png

# The widget's browser tests drive Debian's chromium with Playwright (no browser download).
CHROMIUM ?= /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

chromium:
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# The widget's JavaScript: clean install from the lockfile, unit tests, bundle into static/.
js-test:
	cd js && npm ci --no-audit --no-fund && npx tsc --noEmit && npx vitest run && npm run build

# Lint and type checks first (settings in pyproject.toml: ruff over the package and the tests;
# mypy, strict on render/, metrics/ and widget/), then every test.
lint: setup-test
	$(PY) -m ruff check saliency_widgets tests
	$(PY) -m mypy

# SW_E2E_REQUIRED=1: a missing browser or extra fails the widget's browser tests (no skip).
test: setup-test lint chromium js-test
	SW_E2E_REQUIRED=1 $(PY) -m pytest -q --durations=25 $(PYTEST_ARGS)

bench: setup-test
	$(PY) benchmarks/bench_methods.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis js/node_modules saliency_widgets/static
