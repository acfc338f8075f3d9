# hipaa-audit: `make demo` runs a whole assessment of a generated sample estate;
# `make test` installs what is missing and runs lint, types and the tests CI needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo

.PHONY: test test-all demo bench lint install system-deps clean

# tools the tests run as real peers; installed with apt when missing and we are root
# (pango, harfbuzz-subset and fonts for WeasyPrint; poppler for the tests that read the PDFs;
# dcmtk and Orthanc as DICOM nodes for the network scanner's tests and the demo; acl for the
# permission tests' real POSIX ACLs)
SYSTEM_PACKAGES := openssl gnupg acl tesseract-ocr tesseract-ocr-eng poppler-utils dcmtk orthanc \
	libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 fonts-dejavu-core
SYSTEM_COMMANDS := openssl gpg setfacl tesseract pdftotext pdfdetach pdfsig storescp echoscu Orthanc
SYSTEM_FILES := /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

RUFF = $(VENV)/bin/ruff check hipaa_audit tests bench fixtures

lint: $(STAMP)
	$(RUFF)
	$(VENV)/bin/mypy

system-deps:
	@missing=""; for c in $(SYSTEM_COMMANDS); do command -v $$c >/dev/null || missing=1; done; \
	for f in $(SYSTEM_FILES); do test -e $$f || missing=1; done; \
	ldconfig -p 2>/dev/null | grep -q libpangoft2-1.0 || missing=1; \
	ldconfig -p 2>/dev/null | grep -q libharfbuzz-subset || missing=1; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES); \
	  else echo "missing one of: $(SYSTEM_COMMANDS); install $(SYSTEM_PACKAGES)"; exit 1; fi; \
	fi

# Tests by kind (markers in pyproject.toml, README "Tests"): `make test` is what CI runs, every
# contract included; `make test-all` adds the long variants (`slow`); benchmark smoke tests
# (`bench`) run in `make bench`. PYTEST_ARGS passes more options (e.g. -n 2 with pytest-xdist).
PYTEST := $(VENV)/bin/pytest -q -p no:cacheprovider
PYTEST_ARGS ?=
# the tests run on pytest-xdist workers, each test file on one worker (tests/conftest.py): one
# worker more than the cores, since many tests spend their time waiting on a server or a child
# process (on 2 cores, 3 workers took 9 m 46 s where 2 took 13 m 22 s)
TEST_WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 1 )))

# ruff, then mypy beside the tests: a cold mypy run is ~20 s of one core, which the tests' waits
# on servers and children leave free; its report follows the tests', and either failing fails
TYPES_AND_TESTS = echo "mypy (beside the tests), pytest $(1) -n $(TEST_WORKERS)"; \
	types=$$(mktemp); $(VENV)/bin/mypy >"$$types" 2>&1 & mypy=$$!; \
	$(PYTEST) $(1) -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS); tests=$$?; \
	wait $$mypy; typed=$$?; echo "mypy:"; cat "$$types"; rm -f "$$types"; \
	test $$tests -eq 0 && test $$typed -eq 0

test: system-deps $(STAMP)
	$(RUFF)
	@$(call TYPES_AND_TESTS,-m "not bench and not slow")

test-all: system-deps $(STAMP)
	$(RUFF)
	@$(call TYPES_AND_TESTS,-m "not bench")

# A whole assessment of a generated sample estate, twice (this quarter, then the next, so the
# report shows a trend and `runs diff` has changes). Exit codes 3 (findings) and 4
# (unverifiable targets) are what the sample estate is built to show.
# the demo's network endpoints: real servers on 127.0.0.1, up while each assessment runs
# and its buckets: a local S3 server (moto) on 127.0.0.1:18900, with the credentials it sets
DEMO_PEERS = $(PY) fixtures/netpeers.py run --set demo --folder $(DEMO_DIR)/peers --ports-json $(DEMO_DIR)/peer_ports.json -- \
	$(PY) fixtures/s3peers.py run --set demo --folder $(DEMO_DIR)/s3

demo: system-deps $(STAMP)
	rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)
	$(PY) fixtures/demo.py $(DEMO_DIR)
	$(DEMO_PEERS) -- $(VENV)/bin/hipaa-audit assess --config $(DEMO_DIR)/assessment.toml; rc=$$?; test $$rc -eq 0 -o $$rc -eq 3 -o $$rc -eq 4
	$(PY) fixtures/demo.py $(DEMO_DIR) --next-quarter
	$(DEMO_PEERS) -- $(VENV)/bin/hipaa-audit assess --config $(DEMO_DIR)/assessment.toml; rc=$$?; test $$rc -eq 0 -o $$rc -eq 3 -o $$rc -eq 4
	$(VENV)/bin/hipaa-audit runs list --store $(DEMO_DIR)/history.db
	$(VENV)/bin/hipaa-audit runs diff previous latest --store $(DEMO_DIR)/history.db
	$(VENV)/bin/hipaa-audit runs verify --store $(DEMO_DIR)/history.db
	@echo "Reports: $(DEMO_DIR)/reports/risk-analysis.pdf and $(DEMO_DIR)/reports/baa-evidence.pdf"

bench: system-deps $(STAMP)
	$(PYTEST) -m bench $(PYTEST_ARGS)
	$(PY) bench/archive_header.py
	$(PY) bench/archive_small.py
	$(PY) bench/ocr.py
	$(PY) bench/ocr_recall.py
	$(PY) bench/memory_tree.py
	$(PY) bench/report.py
	$(PY) bench/network.py
	$(PY) bench/s3.py
	$(PY) bench/logs.py
	$(PY) bench/permissions.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) build dist *.egg-info
