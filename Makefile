# The two commands of the README's quick start: `make demo` and `make test`. Both install everything
# (`.[all,test]`) into a project-local virtualenv (.venv) first; `make test` also installs the Debian tools its
# tests run. `make lint`: ruff and mypy as configured in pyproject.toml.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# command:Debian package
APT_TOOLS := docker-compose:docker-compose prometheus:prometheus promtool:prometheus amtool:prometheus-alertmanager

.PHONY: demo test test-fast lint install system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first and pinned: 2.13.0 is the CPU build on local disk; an unpinned torch pulls a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[all,test]'
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

test: lint system-deps
	$(BIN)/pytest -q -p no:cacheprovider --durations=30

# The fast tier while editing: no services, no real model, under a minute.
test-fast: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -m "not integration"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .embguard .cache
