# hipaa-audit: `make demo` runs a whole assessment of a generated sample estate;
# `make test` installs what is missing and runs lint, types and the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo

.PHONY: test demo bench lint install clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check hipaa_audit tests bench fixtures
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest -q -p no:cacheprovider

# exit codes 3 (findings) and 4 (unverifiable files) are what the sample estate is built to show
demo: $(STAMP)
	rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	$(PY) fixtures/generate.py $(DEMO_DIR)/estate
	$(VENV)/bin/hipaa-audit scan archive $(DEMO_DIR)/estate; rc=$$?; test $$rc -eq 0 -o $$rc -eq 3 -o $$rc -eq 4
	$(VENV)/bin/hipaa-audit scan archive $(DEMO_DIR)/estate --format json --output $(DEMO_DIR)/findings.json; rc=$$?; test $$rc -eq 0 -o $$rc -eq 3 -o $$rc -eq 4
	$(VENV)/bin/hipaa-audit scan archive $(DEMO_DIR)/estate --format sarif --output $(DEMO_DIR)/findings.sarif; rc=$$?; test $$rc -eq 0 -o $$rc -eq 3 -o $$rc -eq 4
	@echo "Findings written to $(DEMO_DIR)/findings.json and $(DEMO_DIR)/findings.sarif"

bench: $(STAMP)
	$(PY) bench/archive_header.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) build dist *.egg-info
