# The two commands: `make run` (the store; the terminal demo when no channel is configured) and `make test`.
# Each creates .venv and installs what it needs on first use (and again when pyproject.toml changes), and the Debian
# packages it needs when they are missing (tools/system-packages.sh: apt-get as root; otherwise it names them):
# fonts-noto-cjk for the report charts' Chinese text, and for the tests chromium (browser tests).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-fast bench docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	@tools/system-packages.sh fonts-noto-cjk
	$(PY) run.py $(ARGS)

# Parallel workers (pytest-xdist): many tests wait on sockets, subprocesses and fsync, so one more worker than
# cores keeps both busy. `make test PYTEST_WORKERS=0` runs in one process; PYTEST_ARGS picks tests.
# Each worker imports the test modules; with PYTHONDONTWRITEBYTECODE set (some shells set it) pytest rewrites
# their asserts again every time (2 s of CPU per worker): the test run keeps its bytecode cache.
PYTEST_WORKERS ?= 3
test: $(STAMP)
	@tools/system-packages.sh chromium fonts-noto-cjk
	PYTHONDONTWRITEBYTECODE= $(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

# The fast tier alone (tests/unit: use cases on an in-memory unit of work, pure rules; no database, no network):
# about a second, for the edit-test loop. `make test` runs it too.
test-fast: $(STAMP)
	PYTHONDONTWRITEBYTECODE= $(PY) -m pytest -q -p no:xdist tests/unit $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) bench/allocation.py
	$(PY) bench/pool_scaling.py
	$(PY) bench/import.py
	$(PY) bench/telegram_e2e.py

# docs/configuration.md is generated from the settings model (config/settings/); tests/test_docs.py fails when
# the committed file differs from what this writes.
docs: $(STAMP)
	$(PY) tools/config_reference.py --write

clean:
	rm -rf $(VENV) .pytest_cache
