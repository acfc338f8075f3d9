# hipaa-audit: `make demo` runs a whole assessment of a generated sample estate;
# `make test` installs what is missing and runs lint, types and the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo

.PHONY: test demo bench lint typecheck install clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check hipaa_audit tests bench fixtures

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: lint typecheck
	$(VENV)/bin/pytest -q -p no:cacheprovider

demo: $(STAMP)
	rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	$(PY) fixtures/generate.py $(DEMO_DIR)/estate
	$(VENV)/bin/hipaa-audit scan archive $(DEMO_DIR)/estate --fail-on none
	$(VENV)/bin/hipaa-audit scan archive $(DEMO_DIR)/estate --format json --output $(DEMO_DIR)/findings.json --fail-on none
	$(VENV)/bin/hipaa-audit scan archive $(DEMO_DIR)/estate --format sarif --output $(DEMO_DIR)/findings.sarif --fail-on none
	@echo "Findings written to $(DEMO_DIR)/findings.json and $(DEMO_DIR)/findings.sarif"

bench: $(STAMP)
	$(PY) bench/archive_header.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) build dist *.egg-info
