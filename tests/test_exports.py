"""The exports ``assess`` writes for other tools: JUnit XML for CI dashboards and OCSF
Compliance Finding JSONL, from a real assessment of a small estate with a treatment file."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from conftest import run_cli
from test_treatment import MITIGATE, SUPPRESS, accept, estate

#: Attributes OCSF 1.3.0 requires of a Compliance Finding (class 2003) and its base event.
OCSF_REQUIRED = {"activity_id", "category_uid", "class_uid", "type_uid", "time", "severity_id",
                 "metadata", "finding_info", "compliance"}


def assessed(tmp_path: Path) -> Path:
    estate(tmp_path, accept() + SUPPRESS + MITIGATE)
    r = run_cli("assess", "--config", str(tmp_path / "assessment.toml"), "--fail-on", "none")
    assert r.code == 0, r.stderr
    assert "junit.xml" in r.stdout and "findings.ocsf.jsonl" in r.stdout
    sums = (tmp_path / "reports" / "SHA256SUMS").read_text()
    assert "junit.xml" in sums and "findings.ocsf.jsonl" in sums
    return tmp_path / "reports"


def test_junit_and_ocsf_exports(tmp_path: Path) -> None:
    reports = assessed(tmp_path)
    # JUnit: the counts agree with the elements, decided risks are skipped, not passed
    root = ET.parse(reports / "junit.xml").getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["share"]
    cases = {c.get("name"): c for c in suites[0].findall("testcase")}
    for attr, tag in (("failures", "failure"), ("errors", "error"), ("skipped", "skipped")):
        n = sum(1 for c in cases.values() if c.find(tag) is not None)
        assert int(suites[0].get(attr, "-1")) == n and int(root.get(attr, "-1")) == n
    assert int(suites[0].get("tests", "-1")) == len(cases) == int(root.get("tests", "-1"))
    skipped = cases["dicom-identifier-in-text"].find("skipped")
    assert skipped is not None and "accepted until 2099-12-31" in skipped.get("message", "")
    overlay = cases["dicom-overlay"].find("failure")
    assert overlay is not None and "OVERDUE since 2000-01-15" in (overlay.text or "")
    assert all(c.get("classname") == "archive.share" for c in cases.values())
    assert any(c.find("*") is None for c in cases.values())  # checks that passed
    # OCSF: one Compliance Finding per stored finding, the required attributes present
    findings = json.loads((reports / "findings.json").read_text())["findings"]
    lines = (reports / "findings.ocsf.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    assert len(events) == len(findings) == 5
    assert {e["metadata"]["uid"] for e in events} == {f["id"] for f in findings}
    for e in events:
        assert set(e) >= OCSF_REQUIRED, OCSF_REQUIRED - set(e)
        assert (e["class_uid"], e["category_uid"], e["activity_id"], e["type_uid"]) == \
            (2003, 2, 1, 200301)
        assert e["severity_id"] in range(1, 6) and e["compliance"]["status"] == "Fail"
        assert e["metadata"]["version"] == "1.3.0" and e["metadata"]["product"]["name"]
        assert e["compliance"]["requirements"] and e["compliance"]["control"]
    states = {(e["compliance"]["control"], e["unmapped"]["treatment"], e["status"])
              for e in events if e["unmapped"]["treatment"] != "open"}
    assert states == {("dicom-identifier-in-text", "accepted", "Suppressed"),
                      ("dicom-residual-identifier", "suppressed", "Suppressed")}
