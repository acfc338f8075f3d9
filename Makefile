# hipaa-audit: `make demo` runs a whole assessment of a generated sample estate;
# `make test` installs what is missing and runs lint, types and the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo

.PHONY: test demo bench lint install system-deps clean

# tools the tests run as real peers; installed with apt when missing and we are root
SYSTEM_PACKAGES := openssl gnupg tesseract-ocr tesseract-ocr-eng
SYSTEM_COMMANDS := openssl gpg tesseract

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check hipaa_audit tests bench fixtures
	$(VENV)/bin/mypy

system-deps:
	@missing=""; for c in $(SYSTEM_COMMANDS); do command -v $$c >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES); \
	  else echo "missing one of: $(SYSTEM_COMMANDS); install $(SYSTEM_PACKAGES)"; exit 1; fi; \
	fi

test: system-deps lint
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
	$(PY) bench/ocr.py
	$(PY) bench/memory_tree.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) build dist *.egg-info
