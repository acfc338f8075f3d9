"""Attestations: the shipped starter file, validation at load, the requirement matrix, and the
evidence files hashed and attached to the risk-analysis PDF (read back with poppler)."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest
from conftest import run_cli
from test_treatment import estate, pdftext

from hipaa_audit.attest import citations, load_attestations, starter_text
from hipaa_audit.catalog import load_catalog
from hipaa_audit.config import ConfigError, load_config
from hipaa_audit.risk import requirement_matrix

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
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    message = str(info.value)
    assert str(tmp_path / "attestations.toml") in message and where in message, message
    r = run_cli("assess", "--config", str(cfg))
    assert r.code == 2 and "Traceback" not in r.stderr and where in r.stderr


def test_attested_rows_and_their_evidence_reach_the_pdf(tmp_path: Path) -> None:
    cfg = with_attestations(tmp_path, SANCTIONS)
    r = run_cli("assess", "--config", str(cfg), "--fail-on", "none")
    assert r.code == 0, r.stderr
    pdf = tmp_path / "reports" / "risk-analysis.pdf"
    text = pdftext(pdf)
    assert "Attested implemented: Sanctions policy HR-12 v3" in text
    assert "Attestation evidence" in text
    listing = subprocess.run(["pdfdetach", "-list", str(pdf)], capture_output=True, text=True,
                             check=True).stdout
    assert "sanctions.txt" in listing
    # the evidence changes after the run: a re-rendered report says so and does not attach it
    (tmp_path / "policies" / "sanctions.txt").write_text("edited later\n")
    again = tmp_path / "again.pdf"
    r = run_cli("report", "risk", "--store", str(tmp_path / "history.db"), "--output", str(again))
    assert r.code == 0, r.stderr
    assert "changed or missing since the run: not attached" in pdftext(again)
    listing = subprocess.run(["pdfdetach", "-list", str(again)], capture_output=True, text=True,
                             check=True).stdout
    assert "sanctions.txt" not in listing
