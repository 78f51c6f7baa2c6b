# The two commands of the README's quick start: `make demo` and `make test`. Both install everything
# (`.[all,test]`) into a project-local virtualenv (.venv) first; `make test` also installs the Debian tools its
# tests run. `make lint`: ruff and mypy as configured in pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# command:Debian package
APT_TOOLS := docker-compose:docker-compose prometheus:prometheus promtool:prometheus amtool:prometheus-alertmanager

.PHONY: demo test test-fast lint docs install system-deps clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, at the exact CPU build constraints.txt pins (on local disk); an unpinned torch pulls a CUDA
	# build. The same constraints hold for everything else, so the second step keeps that torch.
	$(BIN)/pip install --quiet -c constraints.txt torch
	$(BIN)/pip install --quiet -c constraints.txt -e '.[all,test]'
	touch $(STAMP)

install: $(STAMP)

system-deps:
	@missing=""; for t in $(APT_TOOLS); do command -v $${t%%:*} >/dev/null || missing="$$missing $${t##*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: $(STAMP)
	$(BIN)/embguard demo

# Two workers, each taking whole files (module fixtures are built once) and starting its own Milvus backends, in
# collection order (tests/conftest.py puts the longest files first; xdist would otherwise start with the files that
# hold the most tests and leave the 4-minute demo for last).
TEST_WORKERS ?= 2
test: lint docs system-deps
	$(BIN)/pytest -q -p no:cacheprovider --durations=30 -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# The fast tier while editing (tests/unit): no services, no real model, under a minute.
test-fast: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The docs site (docs/, mkdocs.yml) into .cache/site; --strict: a broken link or anchor fails. The reference
# pages are generated from the code by docs/hooks.py.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

clean:
	rm -rf $(VENV) .embguard .cache
