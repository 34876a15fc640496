# Two commands set everything up: `make run` and `make test`. Both create .venv with the pinned packages.
# `make lint` runs mypy (strict) and ruff as CI does.
# `make conformance` runs the requests in examples/ against a throwaway server and checks every answer.
# `make bench` measures the server under load against a bare Flask baseline (README: Performance);
# BENCH_SECONDS, BENCH_WARMUP and BENCH_CONNECTIONS change it, e.g. `make bench BENCH_SECONDS=5`;
# it runs every scenario with 1,000 and then 100,000 roles stored first (BENCH_STORED; empty: none).
PYTHON ?= python3
VENV := .venv
INSTALLED := $(VENV)/.installed

.PHONY: run test lint conformance bench reliability reliability-quick clean

$(INSTALLED): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(INSTALLED)

run: $(INSTALLED)
	$(VENV)/bin/fhir-server serve

test: $(INSTALLED)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# Static checks, configured in pyproject.toml: mypy --strict on fhir_server, ruff on the code and the tests.
lint: $(INSTALLED)
	$(VENV)/bin/mypy
	$(VENV)/bin/ruff check fhir_server tests

conformance: $(INSTALLED)
	$(VENV)/bin/fhir-server conformance --serve

bench: $(INSTALLED)
	BENCH_STORED=$${BENCH_STORED-1000,100000} $(VENV)/bin/fhir-server bench

reliability: $(INSTALLED)
	$(VENV)/bin/python -m fhir_server.reliability $(if $(QUICK),--quick)

reliability-quick: $(INSTALLED)
	$(VENV)/bin/python -m fhir_server.reliability --quick

clean:
	rm -rf $(VENV) var
