# Two commands do all the set-up on a fresh Debian machine with Python 3.11:
#   make run   - create .venv, install asicrc, run the daemon against two emulated boards
#   make test  - install test needs (mosquitto/prometheus/chromium via apt when root), run ruff, mypy, pytest
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test
APT_PKGS := mosquitto prometheus chromium

.PHONY: apt-deps run test lint typecheck unit slow bench clean venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(TSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,neuro]'
	touch $@

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/asicrc run --simulate 2

apt-deps:
	@if [ "$$(id -u)" = "0" ]; then \
	  missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  fi; \
	else echo "not root: skipping apt-get of $(APT_PKGS) (tests needing them will skip)"; fi

lint: $(TSTAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(TSTAMP)
	$(BIN)/mypy

unit: $(TSTAMP)
	$(BIN)/pytest -m "not slow" -q

test: apt-deps $(TSTAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -m "not slow" -q

slow: $(TSTAMP)
	ASICRC_SLOW=1 $(BIN)/pytest -m slow -q

bench: $(TSTAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) var build *.egg-info .mypy_cache .ruff_cache
