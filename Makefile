# The Year Above. Two commands do everything on a fresh machine:
#   make run    install, build the index if missing or stale, serve on http://127.0.0.1:5000
#   make test   install and run the whole test suite (real model and browser tests included)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install run dev test test-fast build verify report check lint bench eval clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

build: install
	$(PY) scripts/build_index.py

verify: install
	$(PY) scripts/verify_index.py

report: install
	$(VENV)/bin/flask --app app kb report

run: install
	$(PY) scripts/build_index.py --if-stale --quiet
	$(VENV)/bin/gunicorn -c gunicorn.conf.py 'app:create_app()'

dev: install
	$(PY) scripts/build_index.py --if-stale --quiet
	FLASK_DEBUG=1 $(VENV)/bin/flask --app app run --debug --reload --port 5000

test: install
	bash scripts/ensure_test_services.sh
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m "not slow and not browser"

check: install
	$(PY) scripts/validate_content.py

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: install
	$(PY) benchmarks/bench.py

eval: install
	$(PY) scripts/eval_search.py

clean:
	rm -rf index/gen-* index/current index/.tmp-* .pytest_cache test-artifacts
