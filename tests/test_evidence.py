"""The evidence types: every catalog check declares its shapes, and the checker rejects strays.

Every finding any test builds in-process is checked against its check's declared shapes by the
``evidence_fits_its_type`` fixture of ``conftest.py``; the tests here show that the checker
itself can fail, and that the table and the catalog agree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, get_args

import pytest
from conftest import ROOT

from hipaa_audit import evidence
from hipaa_audit.archive.pathnames import PATH_KEYS
from hipaa_audit.catalog import load_catalog
from hipaa_audit.evidence import CHECK_EVIDENCE, evidence_problems, stored_run_evidence
from hipaa_audit.logs.run import analyze_logs
from hipaa_audit.logs.setup import log_options
from hipaa_audit.model import Location
from hipaa_audit.redaction import Masker

sys.path.insert(0, str(ROOT / "fixtures"))
import logchain
import loggen


def test_every_catalog_check_declares_its_evidence_and_nothing_else_is_declared() -> None:
    catalog = set(load_catalog())
    assert sorted(catalog - set(CHECK_EVIDENCE)) == []
    assert sorted(set(CHECK_EVIDENCE) - catalog) == []


def _grant(**extra: object) -> dict[str, object]:
    return {**evidence.PermissionGrant(principal="alice", resource="s3://phi", actions="read",
                                       grant="policy P", conditions=None, roles="none"), **extra}


def test_a_location_of_the_declared_type_fits() -> None:
    assert evidence_problems("perm-beyond-role", [_grant()]) == []
    assert evidence_problems("s3-unverifiable",
                             [evidence.UncheckedPart(check="s3-versioning")]) == []
    assert evidence_problems("tls-cbc-cipher", [evidence.CipherSuite(
        protocol="TLSv1.2", suite="AES128-SHA", policy="nist", clause="3.3.1")]) == []
    assert evidence_problems("https-hsts-weak",
                             [evidence.EndpointSetting(setting="max-age", value=60)]) == []


@pytest.mark.parametrize(("check_id", "fields", "why"), [
    ("perm-beyond-role", _grant(color="red"), "color: Extra inputs are not permitted"),
    ("perm-beyond-role", {k: v for k, v in _grant().items() if k != "roles"},
     "roles: Field required"),
    ("perm-beyond-role", _grant(roles=3), "roles: Input should be a valid string"),
    ("https-hsts-weak", {"setting": "max-age", "value": 1.5}, "value"),
    ("s3-unverifiable", {"check": "s3-versioning", "bucket": "b"}, "bucket"),
    ("log-integrity", {"kind": "gap", "stream": "a.log", "position": "3", "window": None},
     "position: Input should be a valid integer"),
    ("a-check-nobody-declared", {"x": 1}, "no evidence type is declared"),
    ("perm-unverifiable", {"x": 1}, "the check writes no location"),
])
def test_a_stray_key_a_missing_key_or_a_wrong_type_is_a_problem(
        check_id: str, fields: dict[str, object], why: str) -> None:
    problems = evidence_problems(check_id, [fields])
    assert len(problems) == 1 and why in problems[0], problems


def test_the_fixture_fails_a_test_whose_finding_writes_an_undeclared_key(
        evidence_fits_its_type: list[str]) -> None:
    check = load_catalog()["s3-versioning"]
    check.finding("s3://b", "x", locations=(Location.of(status="Suspended", owner="x"),))
    assert len(evidence_fits_its_type) == 1 and "owner" in evidence_fits_its_type[0]
    evidence_fits_its_type.clear()  # the problem was planted: do not fail this test for it


def test_a_typed_location_renders_in_the_order_it_was_built() -> None:
    loc = Location.of_evidence(evidence.PermissionGrant(principal="alice", resource="s3://phi",
                                                        actions="read", grant="policy P",
                                                        conditions=None, roles="none"))
    assert json.dumps(loc.as_dict()) == json.dumps(
        {"principal": "alice", "resource": "s3://phi", "actions": "read", "grant": "policy P",
         "roles": "none"})
    assert loc == Location.of(principal="alice", resource="s3://phi", actions="read",
                              grant="policy P", conditions=None, roles="none")


def test_stored_run_evidence_narrows_what_the_store_gives_back() -> None:
    meta: dict[str, object] = {"run": {"evidence": {
        "endpoints": [{"asset": "https://h:443"}, "not a row"], "buckets": "not a list",
        "permissions": ["not", "an", "object"], "logs": [{"files": []}]}}}
    found = stored_run_evidence(meta)
    assert found == {"endpoints": [{"asset": "https://h:443"}], "logs": [{"files": []}]}
    assert stored_run_evidence({}) == {}
    assert stored_run_evidence({"run": {"evidence": None}}) == {}


def test_the_key_literal_is_exactly_the_keys_the_types_declare() -> None:
    declared = {k for shapes in CHECK_EVIDENCE.values() for shape in shapes
                for k in shape.__annotations__}
    assert set(get_args(evidence.EvidenceKey)) == declared


def test_the_path_valued_keys_masked_in_archive_findings_are_keys_archive_checks_write() -> None:
    written = {k for check in load_catalog().for_scanner("archive")
               for shape in CHECK_EVIDENCE[check.id] for k in shape.__annotations__}
    assert PATH_KEYS and written >= PATH_KEYS, sorted(PATH_KEYS - written)


def test_text_reads_a_declared_key_as_text() -> None:
    loc = Location.of_evidence(evidence.IntegrityBreak(kind="gap", stream="a.log", position=3,
                                                       window=None))
    assert (loc.text("position"), loc.text("window"), loc.text("principal")) == ("3", "", "")


def test_a_log_analysis_in_process_writes_only_declared_evidence(tmp_path: Path) -> None:
    """Anomalies, Sigma matches, chain breaks and malformed records, through the real runner.

    (The CLI tests run in a child process, which the evidence fixture does not see.)
    """
    loggen.write_all(tmp_path, loggen.generate(seed=3, days=40, users=40, patients=400),
                     formats=["jsonl"])
    logchain.write_chain(tmp_path / "audit-chain.jsonl", logchain.sample_records(40))
    logchain.delete(tmp_path / "audit-chain.jsonl", tmp_path / "audit-chain-bad.jsonl", 15)
    (tmp_path / "broken.jsonl").write_text(
        '{"time": "2026-10-01T10:00:00Z", "user": "ann", "action": "view"}\n{not json\n')
    masker = Masker(b"k" * 32)
    opts = log_options([str(tmp_path / n) for n in ("events.jsonl", "audit-chain-bad.jsonl",
                                                     "broken.jsonl")],
                       masker, sigma=[Path("builtin")], cache=False)
    summaries: list[dict[str, Any]] = []
    results = list(analyze_logs(opts, load_catalog(), masker, on_summary=summaries.append))
    written = {f.check_id for r in results for f in r.findings if f.locations}
    assert {"log-sigma", "log-integrity", "log-unverifiable"} <= written, sorted(written)
    assert any(c.startswith("log-") and c in CHECK_EVIDENCE
               and evidence.LogAnomaly in CHECK_EVIDENCE[c] for c in written), sorted(written)
    [summary] = summaries
    assert set(summary) <= set(evidence.LogSummary.__annotations__), sorted(set(summary))


@pytest.mark.bench  # a smoke test of bench/report.py's generator: make bench runs it first
def test_the_report_benchmark_builds_only_declared_evidence() -> None:
    """Its synthetic findings stand for real ones: they must have the real shapes."""
    sys.path.insert(0, str(ROOT / "bench"))
    import report as bench_report

    gen = bench_report.Generator(load_catalog())
    made = [a for group in range(2) for a, _ in zip(gen.assets(group, ocr=True), range(3000),
                                                    strict=False)]
    checks = {f.check_id for a in made for f in a.findings}
    assert {"dicom-residual-identifier", "archive-unencrypted-phi", "archive-exposed-phi"} \
        <= checks, sorted(checks)
