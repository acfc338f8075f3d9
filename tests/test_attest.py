"""Attestations: the shipped starter file, validation at load, the requirement matrix, and the
evidence files hashed and attached to the risk-analysis PDF (read back with poppler)."""

from __future__ import annotations

import hashlib
import subprocess
import tomllib
from pathlib import Path

import pytest
from conftest import run_cli
from helpers import assess_stored, config_error, estate, pdftext

from hipaa_audit.attest import citations, load_attestations, starter_text
from hipaa_audit.catalog import load_catalog
from hipaa_audit.risk import requirement_matrix

pytestmark = pytest.mark.e2e

SANCTIONS = """
["164.308(a)(1)(ii)(C)"]
question = "Is there a written sanction policy?"
status = "implemented"
answer = "Sanctions policy HR-12 v3, applied twice this year."
evidence = ["policies/sanctions.txt"]
reviewer = "B. Reviewer, Privacy Officer"
reviewed = 2026-11-20
"""


def with_attestations(folder: Path, text: str) -> Path:
    cfg = estate(folder)
    (folder / "policies").mkdir(exist_ok=True)
    (folder / "policies" / "sanctions.txt").write_text("Sanctions policy HR-12, version 3\n")
    (folder / "attestations.toml").write_text(text, encoding="utf-8")
    cfg.write_text(cfg.read_text().replace(
        "[assessment]\n", '[assessment]\nattestations = "attestations.toml"\n'))
    return cfg


def latest_report(folder: Path, kind: str, name: str) -> Path:
    """The ``kind`` report (risk, baa) of the latest run in ``folder``'s store, written to
    ``folder / name`` by the report command."""
    pdf = folder / name
    r = run_cli("report", kind, "--store", str(folder / "history.db"), "--output", str(pdf))
    assert r.code == 0, r.stderr
    return pdf


def test_the_starter_asks_a_question_for_every_one_of_the_69_rows(tmp_path: Path) -> None:
    doc = tomllib.loads(starter_text())
    assert list(doc) == citations() and len(doc) == 69
    questions = [row["question"] for row in doc.values()]
    assert all(q.endswith("?") and len(q) > 30 for q in questions)
    assert len(set(questions)) == 69
    assert all(row["status"] == "unanswered" for row in doc.values())
    out = tmp_path / "attestations.toml"
    r = run_cli("attest", "init", str(out))
    assert r.code == 0 and out.read_text() == starter_text()
    assert len(load_attestations(out)["rows"]) == 69
    again = run_cli("attest", "init", str(out))
    assert again.code == 2 and "not overwritten" in again.stderr


def test_with_the_starter_no_row_is_left_not_assessable(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(starter_text())
    rows = load_attestations(tmp_path / "a.toml")["rows"]
    rows["164.308(a)(1)(ii)(C)"] = {**rows["164.308(a)(1)(ii)(C)"], "status": "implemented",
                                    "answer": "HR-12", "reviewer": "B", "reviewed": "2026-11-20"}
    catalog = load_catalog()
    before = requirement_matrix(catalog, {}, [])
    assert sum(r.status == "not assessable" for r in before) >= 20
    after = {r.citation: r for r in requirement_matrix(catalog, {}, [], rows)}
    assert len(after) == 69
    assert not [c for c, r in after.items() if r.status == "not assessable"]
    assert after["164.308(a)(1)(ii)(C)"].status == "attested"
    assert after["164.310(d)(2)(i)"].status == "attestation open"
    assert after["164.310(d)(2)(i)"].note.startswith("to answer: How is ePHI")
    # a row a scanner evidences keeps the scan's status; the attestation goes beside it
    assert after["164.312(e)(2)(ii)"].status == "not assessed"
    assert after["164.312(e)(2)(ii)"].attestation["status"] == "unanswered"


@pytest.mark.parametrize("text, where", [
    ('["164.999(z)"]\nstatus = "implemented"\n', "'164.999(z)': not a requirement row"),
    (SANCTIONS.replace('"implemented"', '"done"'), "'164.308(a)(1)(ii)(C)'.status"),
    (SANCTIONS.replace('reviewer = "B. Reviewer, Privacy Officer"\n', ""),
     "an answered row needs reviewer"),
    (SANCTIONS.replace("sanctions.txt", "missing.pdf"),
     "'164.308(a)(1)(ii)(C)'.evidence[1]: cannot read"),
    (SANCTIONS + "colour = 'red'\n", "'164.308(a)(1)(ii)(C)'.colour: unknown key"),
    ('["164.308(a)(1)(ii)(C)"\n', "not valid TOML"),
])
def test_attestation_errors_name_the_file_and_key(tmp_path: Path, text: str, where: str) -> None:
    cfg = with_attestations(tmp_path, text)
    message = config_error(cfg)
    assert str(tmp_path / "attestations.toml") in message and where in message, message
    r = run_cli("assess", "--config", str(cfg))
    assert r.code == 2 and "Traceback" not in r.stderr and where in r.stderr


def test_attested_rows_and_their_evidence_reach_the_pdf(tmp_path: Path) -> None:
    # the run in this process (without its reports), its risk report rendered from the store
    # by the report command (the same renderer as the command's), then again
    cfg = with_attestations(tmp_path, SANCTIONS)
    assert assess_stored(cfg, fail_on="none").exit_code == 0
    pdf = latest_report(tmp_path, "risk", "risk.pdf")
    text = pdftext(pdf)
    assert "Attested implemented: Sanctions policy HR-12 v3" in text
    assert "Attestation evidence" in text
    listing = subprocess.run(["pdfdetach", "-list", str(pdf)], capture_output=True, text=True,
                             check=True).stdout
    assert "sanctions.txt" in listing
    # the evidence changes after the run: a re-rendered report says so and does not attach it
    (tmp_path / "policies" / "sanctions.txt").write_text("edited later\n")
    again = latest_report(tmp_path, "risk", "again.pdf")
    assert "changed or missing since the run: not attached" in pdftext(again)
    listing = subprocess.run(["pdfdetach", "-list", str(again)], capture_output=True, text=True,
                             check=True).stdout
    assert "sanctions.txt" not in listing


# --- documents received from business associates ----------------------------------------------

VENDOR = """
[[vendor]]
name = "CloudPACS Inc."
baa_signed = 2024-03-01
archives = ["share"]

[[vendor.document]]
provisions = ["BAA-01", "BAA-12"]
file = "baa/executed-baa.pdf"
title = "Executed BAA, 2024"
received = 2026-11-02
reviewer = "B. Reviewer, Privacy Officer"
reviewed = 2026-11-05

[[vendor.document]]
provisions = ["BAA-04"]
file = "baa/incident-plan.pdf"
received = 2020-01-10
reviewer = "B. Reviewer, Privacy Officer"
reviewed = 2020-01-12
"""


def with_vendor(folder: Path, vendor: str = VENDOR) -> Path:
    cfg = estate(folder)
    (folder / "baa").mkdir(exist_ok=True)
    (folder / "baa" / "executed-baa.pdf").write_bytes(b"%PDF-1.4 executed agreement\n")
    (folder / "baa" / "incident-plan.pdf").write_bytes(b"%PDF-1.4 incident plan\n")
    cfg.write_text(cfg.read_text() + vendor)
    return cfg


@pytest.mark.parametrize("change, where", [
    (("BAA-12", "BAA-99"), "vendor[1].document[1].provisions: Value error, unknown provision"),
    (("baa/executed-baa.pdf", "baa/missing.pdf"), "vendor[1].document[1].file: cannot read"),
    (("reviewed = 2026-11-05", "reviewed = 2026-10-01"), "reviewed is before received"),
    (('title = "Executed BAA, 2024"', 'colour = "red"'), "vendor[1].document[1].colour: unknown"),
])
def test_vendor_document_errors_name_the_key(tmp_path: Path, change: tuple[str, str],
                                             where: str) -> None:
    cfg = with_vendor(tmp_path, VENDOR.replace(*change))
    message = config_error(cfg)
    assert str(cfg) in message and where in message, message


def test_received_documents_turn_requested_into_received_and_old_ones_are_stale(
        tmp_path: Path) -> None:
    # the runs in this process (without their reports), their BAA reports rendered from the
    # store by the report command
    cfg = with_vendor(tmp_path)
    assert assess_stored(cfg, fail_on="none").exit_code == 0
    text = squeezed(latest_report(tmp_path, "baa", "baa.pdf"))
    digest = hashlib.sha256(b"%PDF-1.4 executed agreement\n").hexdigest()[:16]
    assert squeeze("received Executed BAA, 2024, received 2026-11-02, reviewed on 2026-11-05 by "
                   f"B. Reviewer, Privacy Officer; SHA-256 {digest}") in text
    assert squeeze("stale evidence stale: incident-plan.pdf, received 2020-01-10") in text
    assert text.count("documentsrequested") >= 10  # the provisions nothing was received for
    # a longer allowed age: the old document is current again
    longer = 'output_dir = "reports"\nevidence_max_age_days = 3650\n'
    cfg.write_text(cfg.read_text().replace('output_dir = "reports"\n', longer))
    assert assess_stored(cfg, fail_on="none").exit_code == 0
    text = squeezed(latest_report(tmp_path, "baa", "again.pdf"))
    assert squeeze("received incident-plan.pdf, received 2020-01-10") in text
    assert squeeze("stale: incident-plan.pdf") not in text


def squeeze(text: str) -> str:
    return "".join(text.split())


def squeezed(pdf: Path) -> str:
    """The PDF's text in content order (table cells whole), without any whitespace."""
    return squeeze(subprocess.run(["pdftotext", "-raw", str(pdf), "-"], capture_output=True,
                                  text=True, check=True).stdout)
