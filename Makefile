# gateway-dask-zarr: `make run` serves the embedded default, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# checkov (tests/test_deploy.py) lives in its own venv: its pins (boto3, packaging...) clash
# with the app's.
TOOLS_VENV ?= .venv-tools
HOST ?= 127.0.0.1
PORT ?= 8000
# The embedded default's store (SeaweedFS) keeps its data here, across runs.
DATA_DIR ?= data

.PHONY: install install-test run test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-embedded.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-embedded.txt
	touch $@

install-test: $(VENV)/.installed-test $(TOOLS_VENV)/.installed

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt scripts/install-system-packages.sh
	$(PY) -m pip install --quiet -r requirements-test.txt
	bash scripts/install-system-packages.sh
	touch $@

$(TOOLS_VENV)/.installed: requirements-tools.txt
	test -x $(TOOLS_VENV)/bin/python || $(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS_VENV)/bin/python -m pip install --quiet -r requirements-tools.txt
	touch $@

run: install
	HOST=$(HOST) PORT=$(PORT) DATA_DIR=$(DATA_DIR) exec $(VENV)/bin/gunicorn -c gunicorn.conf.py app:app

test: install install-test
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install install-test
	$(PY) -m bench

clean:
	rm -rf $(VENV) $(TOOLS_VENV) artifacts .pytest_cache
