# gateway-dask-zarr: `make run` serves the embedded default, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install install-test run test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

install-test: $(VENV)/.installed-test

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt scripts/install-system-packages.sh
	$(PY) -m pip install --quiet -r requirements-test.txt
	bash scripts/install-system-packages.sh
	touch $@

run: install
	HOST=$(HOST) PORT=$(PORT) exec $(VENV)/bin/gunicorn -c gunicorn.conf.py app:app

test: install install-test
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install install-test
	$(PY) -m bench

clean:
	rm -rf $(VENV) artifacts .pytest_cache
