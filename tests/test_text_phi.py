"""PHI in plaintext exports: CSV, HL7 v2, FHIR, notes; and what is not PHI."""

from __future__ import annotations

import gzip
from typing import Any

import pytest
from conftest import run_cli
from test_phi_never_leaves import leaks

from hipaa_audit.phi.text import analyse

HL7 = (
    "MSH|^~\\&|RIS|HOSP|PACS|HOSP|202001011200||ADT^A01|123|P|2.5\r"
    "PID|1||MRN4471902^^^HOSP^MR||Whitmore^Eleanor^J||19610427|F|||"
    "12 Larkspur Lane^^Springfield^IL^62701||(555) 201-4477||||||219-09-9999\r"
)
FHIR = (
    '{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient",'
    '"identifier":[{"value":"MRN4471902"}],"name":[{"family":"Whitmore","given":["Eleanor"]}],'
    '"birthDate":"1961-04-27","telecom":[{"value":"(555) 201-4477"}]}}]}'
)
FHIR_XML = (
    '<Patient xmlns="http://hl7.org/fhir"><identifier><value value="MRN4471902"/></identifier>'
    '<name><family value="Whitmore"/></name><birthDate value="1961-04-27"/></Patient>'
)
CSV = ("patient_name,dob,mrn,study\nWhitmore^Eleanor,19610427,MRN4471902,CT CHEST\n"
       "Baker^Thomas,1955-03-02,MRN100002,MR BRAIN\n")
NOTE = ("Dictation\nPatient: Eleanor Whitmore, DOB 04/27/1961, seen for follow-up.\n"
        "Call back at (555) 201-4477.\n")

PHI = {
    "adt.hl7": ("hl7v2", {"mrn", "name", "birth-date", "address", "phone", "ssn"}),
    "patient.json": ("fhir-json", {"mrn", "name", "birth-date", "phone"}),
    "patient.xml": ("fhir-xml", {"mrn", "name", "birth-date"}),
    "worklist.csv": ("csv", {"name", "birth-date", "mrn"}),
    "dictation.txt": ("text", {"name", "date", "phone"}),
}
NOT_PHI = {
    "inventory.csv": "hostname,ip,owner,name\npacs1,10.0.0.1,it,Server Room\n"
                     "ws2,10.0.0.2,radiology,Reading Room\n",
    "dose-stats.csv": "modality,count,mean_dose\nCT,1200,8.1\nMR,900,0\n",
    "app.conf": "[server]\nport=8080\nadmin_email=ops@example.org\nlog=/var/log/x\n",
    "README.txt": "Exported on 2024-01-02. Contact the PACS team at pacs@example.org.\n",
    "columns-only.csv": "name,dob,mrn\n",
}


@pytest.mark.parametrize("name", sorted(PHI))
def test_phi_formats(name: str) -> None:
    body = {"adt.hl7": HL7, "patient.json": FHIR, "patient.xml": FHIR_XML,
            "worklist.csv": CSV, "dictation.txt": NOTE}[name]
    result = analyse(body.encode())
    fmt, kinds = PHI[name]
    assert result is not None and result.format == fmt
    assert set(result.kinds) >= kinds, result.kinds
    assert result.records >= 1


@pytest.mark.parametrize("name", sorted(NOT_PHI))
def test_not_phi(name: str) -> None:
    result = analyse(NOT_PHI[name].encode())
    assert result is not None and result.kinds == {}, result


def test_binary_is_not_text() -> None:
    assert analyse(bytes(range(256)) * 10) is None


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("text") / "exports"
    root.mkdir()
    (root / "adt.hl7").write_text(HL7)
    (root / "patient.json").write_text(FHIR)
    (root / "worklist.csv").write_text(CSV)
    (root / "dictation.txt").write_text(NOTE)
    (root / "worklist.csv.gz").write_bytes(gzip.compress(CSV.encode(), mtime=0))
    for name, body in NOT_PHI.items():
        (root / name).write_text(body)
    result = run_cli("scan", "archive", "exports", "--format", "json", cwd=root.parent)
    assert result.code == 3, result.stderr
    doc: dict[str, Any] = result.json()
    doc["_raw"] = result.stdout
    return doc


def test_scan_reports_each_export(scanned: dict[str, Any]) -> None:
    found = {f["asset"]: f for f in scanned["findings"]
             if f["check_id"] == "archive-unencrypted-phi"}
    assert set(found) == {"exports/adt.hl7", "exports/patient.json", "exports/worklist.csv",
                          "exports/dictation.txt", "exports/worklist.csv.gz!/worklist.csv"}
    assert found["exports/adt.hl7"]["severity"] == "critical"  # it carries an SSN
    assert found["exports/worklist.csv"]["category"] == "unencrypted-phi"
    assert found["exports/worklist.csv"]["locations"][0]["found"] == {
        "birth-date": 2, "mrn": 2, "name": 2}
    assert scanned["run"]["assets"]["text"] == len(NOT_PHI) + 5


def test_no_value_leaves(scanned: dict[str, Any]) -> None:
    assert not leaks(scanned["_raw"])
    for value in ("Whitmore", "4471902", "19610427", "1961-04-27", "201-4477", "219-09-9999",
                  "Larkspur", "Baker"):
        assert value not in scanned["_raw"]
