"""``analyze logs`` on a realistic month: the planted anomalies stand out of the rest.

``fixtures/loggen.py``'s :func:`~loggen.realistic_month` adds to the base simulation what real
estates do (a change of summer time, records in local time with their offsets, affiliates in
another time zone, modalities storing into the archive day and night, CI, instance and backup
roles as AssumedRole sessions working at night, CloudTrail delivered as files whose records are
in no order). Every format is analysed with and without ``--timezone``: each planted anomaly
present in it is found, and the findings at medium or above that match no planted anomaly fit
on one screen (fewer than :data:`SCREEN`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from helpers import EQUIVALENT, EXCEPTIONS, analyse_logs_in_process, matches

from hipaa_audit.logs.options import LogsOptions

sys.path.insert(0, str(ROOT / "fixtures"))
import loggen

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]
SCREEN = 25
MEDIUM_OR_ABOVE = ("medium", "high", "critical")
#: what each format is given as: the trail folder's log files, or the file
INPUTS = {"atna": "audit-atna.log", "fhir": "auditevents.ndjson", "csv": "events.csv",
          "jsonl": "events.jsonl", "cloudtrail": "trail/AWSLogs/**/*.json.gz"}


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("month")
    loggen.write_realistic(folder, loggen.realistic_month())
    return folder


def analyse(folder: Path, fmt: str, timezone: str | None) -> dict[str, Any]:
    """The JSON of ``analyze logs`` on one format's logs, run in the test's process.

    What is tested is the analysis; the CLI around it is tested by ``test_logs.py``.
    """
    options = LogsOptions.from_command_line(
        paths=[str(folder / INPUTS[fmt])], timezone=timezone, roster=folder / "roster.csv",
        vip=folder / "vip_patients.txt", coworkers=folder / "coworker_patients.txt")
    code, texts = analyse_logs_in_process(options, ["json"])
    assert code == 0
    doc: dict[str, Any] = json.loads(texts["json"])
    return doc


# Without --timezone (records keep their own offsets) is the long variant: make test-all.
@pytest.mark.parametrize("timezone", ["America/New_York",
                                      pytest.param(None, marks=pytest.mark.slow)])
@pytest.mark.parametrize("fmt", list(INPUTS))
def test_planted_anomalies_stand_out(month: Path, fmt: str, timezone: str | None) -> None:
    doc = analyse(month, fmt, timezone)
    labels = [lab for lab in json.loads((month / "labels.json").read_text())
              if fmt in lab["formats"] and (fmt, lab["kind"]) not in EXCEPTIONS]
    findings = [f for f in doc["findings"] if f["status"] == "fail"]
    missed = [(lab["kind"], lab["user"] or lab["system"]) for lab in labels
              if not any(matches(f, lab) for f in findings)]
    assert missed == []
    others = [f for f in findings if f["severity"] in MEDIUM_OR_ABOVE
              and not any(matches(f, lab) for lab in labels)]
    per_check: dict[str, int] = {}
    for f in others:
        per_check[f["check_id"]] = per_check.get(f["check_id"], 0) + 1
    assert len(others) < SCREEN, per_check
    [summary] = doc["run"]["evidence"]["logs"]
    zone = summary["timezone"]
    if timezone:
        assert zone == {"zone": timezone, "source": "given"}
    elif fmt in ("atna", "fhir"):  # their records carry UTC offsets
        assert zone["zone"] == "America/New_York" and "inferred" in zone["source"]
    else:  # CSV, JSONL and CloudTrail here write UTC
        assert zone["zone"] == "UTC" and "judged in UTC" in zone["source"]
    assert EQUIVALENT  # the label kinds a finding may stand for are those of test_logs
