# `make demo` and `make test` work on a fresh machine: they create .venv, install, then run.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# The CPU build of torch by default; a GPU cluster installs its CUDA build first (see README).
TORCH  ?= torch==2.13.0
STAMP   = $(VENV)/.installed

.PHONY: demo test lint clean browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/sparsity demo

test: $(STAMP) browser
	$(BIN)/python -m pytest

# The report's browser test needs Chromium and its driver: Debian's packages, installed where they are missing
# (as root, or through sudo). Elsewhere install Chromium and chromedriver yourself, or set SPARSITY_NO_BROWSER=1.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ -n "$$SPARSITY_NO_BROWSER" ]; then echo "SPARSITY_NO_BROWSER is set: the browser test is skipped"; \
	elif command -v apt-get >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "installing Debian's chromium and chromium-driver for the report's browser test"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "no chromium/chromedriver and no apt-get: install them, or set SPARSITY_NO_BROWSER=1" >&2; exit 1; fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) sweeps .pytest_cache
