"""``hipaa-audit assess`` end to end on the sample estate of ``make demo``: two quarters, both
PDFs read back with poppler, the attachments, the signature, the history commands, and a search
of every output for the planted PHI values."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import re
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, CliResult, run_cli
from helpers import leaks

from hipaa_audit.hipaa import security_rule_data

sys.path.insert(0, str(ROOT / "fixtures"))
import netpeers
import s3peers

pytestmark = [pytest.mark.e2e, pytest.mark.serial]  # the demo's fixed ports

_spec = importlib.util.spec_from_file_location("demo", ROOT / "fixtures" / "demo.py")
assert _spec and _spec.loader
demo: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo)

SECTIONS = ("1. Executive summary", "2. Scope and methodology", "3. Asset inventory",
            "4. Risk register", "5. HIPAA Security Rule requirement matrix",
            "6. Findings by domain", "7. Remediation plan",
            "8. Changes since the previous assessment", "Appendix A. Evidence and run metadata",
            "Appendix B. Scales and method")

#: Days of audit logs in the estate: the fewest that hold every injected anomaly (``make demo``
#: writes 60; parsing them is a large part of the first assessment's cost; nothing here needs more)
LOG_DAYS = 40


@dataclass
class Assessed:
    folder: Path
    first: CliResult
    second: CliResult
    q1_reports: Path

    @property
    def reports(self) -> Path:
        return self.folder / "reports"

    @property
    def store(self) -> Path:
        return self.folder / "history.db"


@functools.cache
def pdftext(pdf: Path, layout: bool = True) -> str:
    """The PDF's text (poppler's pdftotext); read once per file and layout, as the tests only
    read the reports they are given."""
    args = ["pdftotext", *(["-layout"] if layout else []), str(pdf), "-"]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def pages(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True,
                          check=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)", info, re.MULTILINE).group(1))  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def assessed(tmp_path_factory: pytest.TempPathFactory) -> Assessed:
    folder = tmp_path_factory.mktemp("riverton")
    demo.write(folder, log_days=LOG_DAYS)
    # an EC key (quick to make); RSA keys are signed with in test_sign.py
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
                    "-subj", "/CN=Riverton Security Officer", "-keyout", str(folder / "key.pem"),
                    "-out", str(folder / "cert.pem")], check=True, capture_output=True)
    cfg = folder / "assessment.toml"
    cfg.write_text(cfg.read_text().replace(
        'output_dir = "reports"',
        'output_dir = "reports"\nsign_key = "key.pem"\nsign_cert = "cert.pem"'))
    certs = netpeers.make_certs(folder / "peers" / "certs")
    buckets = s3peers.start_set(folder / "s3", "demo")  # the demo's S3 server
    env = next(iter(buckets.values())).env()
    try:
        with netpeers.Peers(folder / "peers") as peers:  # the demo's network endpoints
            netpeers.start_demo(peers, certs, folder / "peers", demo.DEMO_PORTS)
            first = run_cli("assess", "--config", str(cfg), timeout=600, env=env)
            q1 = folder / "reports-q1"
            shutil.copytree(folder / "reports", q1)
            demo.next_quarter(folder)
            second = run_cli("assess", "--config", str(cfg), timeout=600, env=env)
    finally:
        s3peers.stop_set(buckets)
    return Assessed(folder, first, second, q1)


def test_assess_exits_3_and_writes_every_file(assessed: Assessed) -> None:
    for result in (assessed.first, assessed.second):
        assert result.code == 3, result.stderr  # the estate holds high findings
        assert "Traceback" not in result.stderr
    names = {"risk-analysis.pdf", "baa-evidence.pdf", "findings.json", "findings.csv",
             "SHA256SUMS"}
    assert names <= {p.name for p in assessed.reports.iterdir()}
    for line in (assessed.reports / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256((assessed.reports / name).read_bytes()).hexdigest() == digest
    assert "wrote" in assessed.second.stdout and "signed with certificate" in assessed.second.stdout


def test_findings_json_holds_every_stored_finding(assessed: Assessed) -> None:
    doc = json.loads((assessed.reports / "findings.json").read_text())
    assert doc["schema"] == "hipaa-audit.findings/1" and doc["run"]["command"] == "assess"
    with sqlite3.connect(assessed.store) as db:
        stored = db.execute("SELECT COUNT(*) FROM findings WHERE run_seq = "
                            "(SELECT MAX(seq) FROM runs)").fetchone()[0]
    assert len(doc["findings"]) == stored > 50
    csv_rows = (assessed.reports / "findings.csv").read_text().count("\n") - 1
    assert csv_rows >= stored  # (a cell may hold a newline)
    assert not [f for f in doc["findings"] if f["check_id"] == "assessment-target-not-checked"]
    by_check = {(f["check_id"], f["asset"]) for f in doc["findings"]}
    for expected in [("dicom-plaintext", "dicom://127.0.0.1:18104"),
                     ("cert-expired", "tls://127.0.0.1:18445"),
                     ("tls-legacy-protocol", "https://127.0.0.1:18444"),
                     ("network-target-unverifiable", "dicom://modality1.riverton.example:104")]:
        assert expected in by_check, expected
    grades = {e["asset"]: e["grade"] for e in doc["run"]["evidence"]["endpoints"]}
    assert grades["https://127.0.0.1:18443"] == "A+" and grades["tls://127.0.0.1:18445"] == "T"
    for expected in [("s3-public-acl", "s3://riverton-research-exports"),
                     ("s3-object-lock", "s3://riverton-audit-logs"),
                     ("s3-lifecycle-retention", "s3://riverton-audit-logs"),
                     ("s3-tls-only", "s3://riverton-imaging-archive"),
                     ("archive-unencrypted-phi", "s3://riverton-research-exports/exports/cohort.csv")]:
        assert expected in by_check, expected
    buckets = {b["bucket"]: b for b in doc["run"]["evidence"]["buckets"]}
    assert buckets["riverton-research-exports"]["public"] is True
    assert buckets["riverton-imaging-archive"]["group"] == "cloud-storage"


def test_logs_are_reviewed_and_shown(assessed: Assessed) -> None:
    doc = json.loads((assessed.reports / "findings.json").read_text())
    by_check = {(f["check_id"], f["asset"].rsplit("/", 1)[-1]) for f in doc["findings"]}
    assert ("log-integrity", "access-chain.jsonl") in by_check  # the deleted record
    checks = {c for c, _ in by_check}
    assert {"log-bulk-export", "log-password-spray", "log-snooping", "log-sigma"} <= checks
    [summary] = doc["run"]["evidence"]["logs"]
    assert summary["group"] == "audit-logs" and summary["events"] > 50_000
    text = pdftext(assessed.reports / "risk-analysis.pdf", layout=False)
    flat = re.sub(r"\s+", "", text)
    assert "Audit logs reviewed" in text and "pacs-audit.jsonl" in flat
    assert "bulk-export1" in flat and "password-spray1" in flat
    baa = re.sub(r"\s+", " ", pdftext(assessed.reports / "baa-evidence.pdf", layout=False))
    # CloudPACS runs the PACS whose audit export was reviewed: its audit logging has evidence
    assert "Audit logging gaps found" in baa and "audit log" in baa


def test_permissions_are_judged_and_shown(assessed: Assessed) -> None:
    doc = json.loads((assessed.reports / "findings.json").read_text())
    by_check = {(f["check_id"], f["asset"]) for f in doc["findings"]}
    for expected in [
        ("perm-unexplained-path", "aws:user/fwilson"),         # in storage-admins, not approved
        ("perm-beyond-role", "s3://riverton-imaging-archive"),  # emiller's s3:*
        ("perm-cross-account", "s3://riverton-imaging-archive"),  # 999988887777's role
        ("perm-account-not-in-roster", "aws:user/cdavis"),     # left in June
        ("perm-anyone-access", "s3://riverton-research-exports"),  # public-read ACL
        ("perm-grant-outside-baseline", "pacs:main"),          # the Viewer role
    ]:
        assert expected in by_check, expected
    # the S3 scan found PHI in the research exports: the public grant on it is critical
    public = [f for f in doc["findings"] if (f["check_id"], f["asset"]) ==
              ("perm-anyone-access", "s3://riverton-research-exports")]
    assert public[0]["severity"] == "critical"
    # the trusted vendor's access is explained by the baseline: no finding names it
    assert not any("444455556666" in f["message"] for f in doc["findings"])
    perm = doc["run"]["evidence"]["permissions"]
    assert perm["group"] == "access" and perm["previous"] and perm["riskiest"]
    text = re.sub(r"\s+", " ", pdftext(assessed.reports / "risk-analysis.pdf", layout=False))
    assert "Access to PHI and permission drift" in text and "riskiest paths" in text
    baa = re.sub(r"\s+", " ", pdftext(assessed.reports / "baa-evidence.pdf", layout=False))
    assert "What its principals can reach" in baa
    assert "aws:account/444455556666" in baa and "pacs:main:user/cloudpacs-support" in baa
    # the vendor's support account is one of its systems: its roster finding is its evidence
    assert "principal pacs:main:user/cloudpacs-support yes, asset group access" in baa
    assert "perm-account-not-in-roster" in baa


def test_reports_show_the_buckets(assessed: Assessed) -> None:
    text = pdftext(assessed.reports / "risk-analysis.pdf", layout=False)
    flat = re.sub(r"\s+", "", text)
    assert "Cloud buckets" in text
    for needle in ("s3://riverton-research-exports", "s3://riverton-audit-logs", "audit-log",
                   "public-acl", "object-lock"):
        assert needle in flat, needle
    baa = re.sub(r"\s+", "", pdftext(assessed.reports / "baa-evidence.pdf", layout=False))
    assert "s3://riverton-imaging-archive" in baa and "encryptionAES256" in baa
    assert "failed:" in baa and "tls-only" in baa


def test_reports_show_the_network_endpoints(assessed: Assessed) -> None:
    text = pdftext(assessed.reports / "risk-analysis.pdf")
    assert "Network endpoints" in text
    for needle in ("https://127.0.0.1:18443", "A+", "in clear", "imaging-network: nist-800-52r2"):
        assert needle in text, needle
    baa = pdftext(assessed.reports / "baa-evidence.pdf", layout=False)
    assert "TLS grade A+" in baa and "dicom+tls://127.0.0.1:18762" in baa


def test_risk_analysis_pdf_has_every_section_page_numbers_and_contents(
        assessed: Assessed) -> None:
    pdf = assessed.reports / "risk-analysis.pdf"
    text = pdftext(pdf)
    n = pages(pdf)
    assert n >= 10
    for section in SECTIONS:
        assert text.count(section) >= 2, section  # in the contents and as a heading
        assert re.search(re.escape(section) + r"\s*\.{3,}\s*\d+", text), f"no page for {section}"
    assert f"Page 1 of {n}" in text and f"Page {n} of {n}" in text
    for needle in ("Riverton Medical Center", "A. Officer, Security Officer",
                   "2026-10-01 to 2026-12-31", "hipaa-audit 0.1.0", "Very High", "R-001",
                   "Owner", "Due date", "Since the previous assessment", "not assessable",
                   "OCR off", "findings.json", "findings.csv"):
        assert needle in text, needle
    run_id = json.loads((assessed.reports / "findings.json").read_text())["run"]["id"]
    assert run_id in text
    flat = re.sub(r"\s+", "", text)
    for row in security_rule_data()["security_rule"]:
        assert row["citation"] in flat, row["citation"]


def test_pdfs_are_pdfa3b_with_bookmarks_attachments_and_a_valid_signature(
        assessed: Assessed, tmp_path: Path) -> None:
    pdf = assessed.reports / "risk-analysis.pdf"
    meta = subprocess.run(["pdfinfo", "-meta", str(pdf)], capture_output=True, text=True).stdout
    assert re.search(r"pdfaid:part[^0-9]{0,3}3", meta) and "pdfaid:conformance" in meta
    listing = subprocess.run(["pdfdetach", "-list", str(pdf)], capture_output=True,
                             text=True).stdout
    assert "findings.json" in listing and "findings.csv" in listing
    subprocess.run(["pdfdetach", "-saveall", "-o", str(tmp_path), str(pdf)], check=True)
    assert (tmp_path / "findings.json").read_bytes() == \
        (assessed.reports / "findings.json").read_bytes()
    from pyhanko.pdf_utils.reader import PdfFileReader

    with open(pdf, "rb") as f:
        outlines = PdfFileReader(f).root["/Outlines"]
        assert outlines["/Count"] != 0
    for name in ("risk-analysis.pdf", "baa-evidence.pdf"):
        sig = subprocess.run(["pdfsig", str(assessed.reports / name)], capture_output=True,
                             text=True).stdout
        assert "Signature is Valid" in sig, sig


def test_baa_pdf_shows_each_vendor_evidence_and_requested_documents(assessed: Assessed) -> None:
    text = pdftext(assessed.reports / "baa-evidence.pdf", layout=False)
    for needle in ("CloudPACS Inc.", "TeleRead Radiology LLC", "documents requested",
                   "signed before 2013-09-23", "gaps found", "Encryption at rest",
                   "Transmission security",
                   "164.504(e)(2)(ii)(D)", "164.314(a)(2)(i)(C)", "Offshore reading group",
                   "riverton-imaging-archive", "not among the configured targets"):
        assert re.sub(r"\s+", "", needle) in re.sub(r"\s+", "", text), needle
    statuses = set(re.findall(r"documents (\w+)", re.sub(r"\s+", " ", text)))
    assert "requested" in statuses and not statuses & {"seen", "received", "verified"}
    assert pages(assessed.reports / "baa-evidence.pdf") >= 4


def test_first_report_has_no_trend_second_has_one(assessed: Assessed) -> None:
    first = pdftext(assessed.q1_reports / "risk-analysis.pdf")
    second = pdftext(assessed.reports / "risk-analysis.pdf")
    assert "first assessment in the history store" in first
    assert "first assessment in the history store" not in second
    assert re.search(r"\d+ new findings, \d+ resolved", re.sub(r"\s+", " ", second))
    assert "fail_new_upload_every_identifier.dcm" in re.sub(r"\s+", "", second)


@pytest.fixture(scope="module")
def diff_json(assessed: Assessed) -> CliResult:
    """``runs diff previous latest --format json`` of the two quarters (two tests read it)."""
    return run_cli("runs", "diff", "previous", "latest", "--store", str(assessed.store),
                   "--format", "json")


def test_runs_list_show_diff_verify(assessed: Assessed, diff_json: CliResult,
                                    tmp_path: Path) -> None:
    store = str(assessed.store)
    listed = run_cli("runs", "list", "--store", store, "--format", "json").json()["runs"]
    assert len(listed) == 2 and all(r["complete"] for r in listed)
    shown = run_cli("runs", "show", "latest", "--store", store, "--format", "json").json()
    assert shown["register"] and shown["groups"][0]["name"] == "research-share"
    assert diff_json.code == 0
    d = diff_json.json()
    files = [f for f in d["new"] if not f["check_id"].startswith("perm-")]
    assert {Path(f["asset"]).name for f in files} == {"fail_new_upload_every_identifier.dcm"}
    assert {Path(f["asset"]).name for f in d["resolved"]
            if not f["check_id"].startswith("perm-")} == {
        "fail_overlay_curve_icon.dcm", "fail_private_blocks.dcm"}
    # access: the new PACS admin, and the stray ACL entry that was removed
    access = {(f["check_id"], f["asset"]) for f in d["new"] if f["check_id"].startswith("perm-")}
    assert {("perm-grant-added", "pacs:main:role/PACS Admin"),
            ("perm-unexplained-path", "pacs:main:user/gpatel")} <= access
    assert any(c == "perm-grant-removed" and a.endswith("/estate/exports") for c, a in access)
    assert {(f["check_id"], Path(f["asset"]).name) for f in d["resolved"]
            if f["check_id"].startswith("perm-")} == {("perm-grant-outside-baseline", "exports")}
    assert d["persisting"] > 50
    table = run_cli("runs", "diff", listed[0]["id"][:20], "latest", "--store", store)
    assert "new" in table.stdout and "resolved" in table.stdout
    ok = run_cli("runs", "verify", "--store", store)
    assert ok.code == 0 and "2 runs verified" in ok.stdout
    copy = tmp_path / "tampered.db"
    shutil.copyfile(store, copy)
    with sqlite3.connect(copy) as db:
        db.execute("DELETE FROM findings WHERE rowid = (SELECT MIN(rowid) FROM findings)")
    bad = run_cli("runs", "verify", "--store", str(copy))
    assert bad.code == 3 and listed[0]["id"] in bad.stderr and "altered" in bad.stderr
    missing = run_cli("runs", "show", "nosuchrun", "--store", store)
    assert missing.code == 2 and "runs list" in missing.stderr


def test_second_quarter_carries_the_treatment_file(assessed: Assessed,
                                                  diff_json: CliResult) -> None:
    """An accepted risk, an expired acceptance, an overdue mitigation and a suppression."""
    out = assessed.second.stdout
    assert "treatment file: 1 findings accepted, 1 suppressed; 1 overdue mitigation(s), " \
        "1 lapsed acceptance(s) or suppression(s)" in out, out
    assert "treatment file" not in assessed.first.stdout
    text = re.sub(r"\s+", " ", pdftext(assessed.reports / "risk-analysis.pdf", layout=False))
    assert "Accepted, residual Low" in text
    assert "OVERDUE since" in text and "Imaging informatics (J. Rivera)" in text
    assert "acceptance ACC-2025-11 expired on" in text
    assert "Appendix C. Suppressed findings" in text and "FP-2026-01: 1 finding(s) suppressed" \
        in text and "corrupt_zero_length.dcm" in text
    q1 = re.sub(r"\s+", " ", pdftext(assessed.q1_reports / "risk-analysis.pdf", layout=False))
    assert "Appendix C" not in q1 and "No risk treatment file is named" in q1
    sarif = json.loads((assessed.reports / "findings.sarif").read_text(encoding="utf-8"))
    marked = [r for r in sarif["runs"][0]["results"] if r.get("suppressions")]
    assert sorted(r["ruleId"] for r in marked) == ["archive-unverifiable", "archive-zipcrypto"]
    diff = diff_json.json()
    changed = {c["check_id"]: c for c in diff["decisions"]}
    assert changed["archive-zipcrypto"]["after"].startswith("accept: accepted until")
    assert changed["dicom-residual-identifier"]["after"].startswith("mitigate: OVERDUE since")
    assert all(c["before"] == "no decision" for c in diff["decisions"])


def test_second_quarter_oscal_exports_show_the_decisions(assessed: Assessed) -> None:
    """Both OSCAL documents (validated with trestle's models) carry the treatment file."""
    from helpers import check_integrity, oscal_documents

    ar, plan = oscal_documents(assessed.reports)
    for doc in (ar, plan):
        check_integrity(doc)

    def check_of(x: dict[str, Any]) -> str:
        return next(p["value"] for p in x["props"] if p["name"] == "check-id")

    risks = {(check_of(r), r["status"]) for r in ar["results"][0]["risks"]}
    assert ("archive-zipcrypto", "deviation-approved") in risks
    assert ("dicom-residual-identifier", "remediating") in risks
    assert ("dicom-deidentification-declaration", "open") in risks  # the expired acceptance
    for doc, items in ((ar["results"][0], ar["results"][0]["risks"]),
                       (plan, plan["poam-items"])):
        text = json.dumps(items)
        assert "accepted until" in text and "OVERDUE since" in text
        assert "deviation-approved" in text and "remediating" in text
        fp = [o for o in doc["observations"]
              if o.get("remarks", "").startswith("false positive (FP-2026-01)")]
        assert [check_of(o) for o in fp] == ["archive-unverifiable"]
        assert fp[0]["subjects"][0]["title"].endswith("corrupt_zero_length.dcm")
    expired = next(r for r in ar["results"][0]["risks"]
                   if check_of(r) == "dicom-deidentification-declaration")
    assert [e["status-change"] for e in expired["risk-log"]["entries"]] == \
        ["deviation-approved", "open"]
    q1, _ = oscal_documents(assessed.q1_reports)
    assert {r["uuid"] for r in q1["results"][0]["risks"]} & \
        {r["uuid"] for r in ar["results"][0]["risks"]}  # the same risks keep their UUIDs


def test_second_quarter_attests_every_row_no_scanner_sees(assessed: Assessed) -> None:
    not_assessable = re.compile(r"(Required|Addressable|Standard)\s+not assessable")
    q1 = pdftext(assessed.q1_reports / "risk-analysis.pdf")
    assert len(not_assessable.findall(q1)) >= 20  # the search finds them when they are there
    pdf = assessed.reports / "risk-analysis.pdf"
    q2 = pdftext(pdf)
    assert not not_assessable.findall(q2)
    # three answered rows no scanner sees are "attested"; three others keep the scan's status
    # with the attestation beside it
    assert len(re.findall(r"(Required|Addressable|Standard)\s+attested\b", q2)) == 3
    flat = re.sub(r"\s+", " ", pdftext(pdf, layout=False))
    assert "Attested implemented: Annual HIPAA security training" in flat
    assert "Attested not implemented: Policies older than 2021" in flat
    assert len(re.findall(r"attestation open", q2)) >= 15
    listing = subprocess.run(["pdfdetach", "-list", str(pdf)], capture_output=True, text=True,
                             check=True).stdout
    for name in ("sanctions-policy.txt", "training-completion.csv", "disposal-certificates.txt"):
        assert name in listing


def test_second_quarter_shows_the_baa_documents_received(assessed: Assessed) -> None:
    def squeezed(pdf: Path) -> str:  # content order keeps each table cell whole
        return "".join(subprocess.run(["pdftotext", "-raw", str(pdf), "-"], capture_output=True,
                                      text=True, check=True).stdout.split())

    q2 = squeezed(assessed.reports / "baa-evidence.pdf")
    q1 = squeezed(assessed.q1_reports / "baa-evidence.pdf")
    assert "receivedExecutedbusinessassociateagreement" not in q1
    assert q2.count("receivedExecutedbusinessassociateagreement") == 5  # BAA-01, 02, 10-12
    assert q2.count("staleevidencestale:Incidentresponseplan") == 2  # BAA-04, BAA-S3
    assert "documentsrequested" in q2  # the rest, and TeleRead's, are still requested


def test_report_command_renders_a_past_run(assessed: Assessed, tmp_path: Path) -> None:
    first_id = json.loads((assessed.q1_reports / "findings.json").read_text())["run"]["id"]
    out = tmp_path / "q1.pdf"
    # a detail limit below the number of findings leaves some domains without detail rows
    result = run_cli("report", "risk", "--run", "previous", "--store", str(assessed.store),
                     "--output", str(out), "--detail-limit", "10")
    assert result.code == 0, result.stderr
    text = pdftext(out)
    assert first_id in text and re.search(r"10 of \d+ findings are shown", text)
    # (`report baa` from a store runs in test_attest.py and test_child_imports.py; here each
    # run's BAA is the one its assessment wrote, which the tests above read)


def test_no_planted_phi_in_any_output(assessed: Assessed, tmp_path: Path) -> None:
    texts = {"stdout/stderr": "".join(r.stdout + r.stderr
                                      for r in (assessed.first, assessed.second))}
    for folder in (assessed.reports, assessed.q1_reports):
        for pdf in folder.glob("*.pdf"):
            texts[str(pdf)] = pdftext(pdf)
            out = tmp_path / pdf.stem / folder.name
            out.mkdir(parents=True)
            subprocess.run(["pdfdetach", "-saveall", "-o", str(out), str(pdf)], check=True)
            for f in out.iterdir():
                texts[f"{pdf}!/{f.name}"] = f.read_text("utf-8", "replace")
        for name in ("findings.json", "findings.csv"):
            texts[str(folder / name)] = (folder / name).read_text("utf-8", "replace")
    with sqlite3.connect(assessed.store) as db:
        texts["history store"] = "\n".join(db.iterdump())
    assert len(texts) >= 12
    found = {where: hits for where, text in texts.items() if (hits := leaks(text))}
    assert not found, found
    # the same search finds the values where they are: the estate itself
    raw = (assessed.folder / "estate/exports/patient.json").read_text()
    assert leaks(raw)


def test_bad_config_exits_2_naming_file_and_key_and_scans_nothing(tmp_path: Path) -> None:
    cfg = tmp_path / "assessment.toml"
    cfg.write_text('[assessment]\norganization = "O"\nname = "N"\nassessor = "A"\n'
                   '[[archive]]\npaths = ["x"]\nworker = 2\n')
    result = run_cli("assess", "--config", str(cfg), "--store", str(tmp_path / "h.db"))
    assert result.code == 2
    assert str(cfg) in result.stderr and "archive[1].worker: unknown key" in result.stderr
    assert not (tmp_path / "h.db").exists()
    absent = run_cli("assess", "--config", str(tmp_path / "none.toml"))
    assert absent.code == 2 and "none.toml" in absent.stderr
