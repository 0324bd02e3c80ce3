# The README's commands. Each sets everything up on a fresh machine first.
#   make demo   set up, then explain an image with every method and write out/methods.png
#   make test   set up (with the test extras), then run every test
#   make bench  set up, then compare speed with Captum / pytorch-grad-cam and the floor
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check -c constraints.txt

.PHONY: setup setup-test demo test bench clean chromium js-test

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

setup: $(VENV)/.core
setup-test: $(VENV)/.test

demo: setup
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(PY) scripts/demo_grid.py --out out/methods.png

# The widget's browser tests drive Debian's chromium with Playwright (no browser download).
CHROMIUM ?= /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

chromium:
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# The widget's JavaScript: clean install from the lockfile, unit tests, bundle into static/.
js-test:
	cd js && npm ci --no-audit --no-fund && npx tsc --noEmit && npx vitest run && npm run build

# SW_E2E_REQUIRED=1: a missing browser or extra fails the widget's browser tests (no skip).
test: setup-test chromium js-test
	SW_E2E_REQUIRED=1 $(PY) -m pytest -q --durations=25 $(PYTEST_ARGS)

bench: setup-test
	$(PY) benchmarks/bench_methods.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis js/node_modules saliency_widgets/static
