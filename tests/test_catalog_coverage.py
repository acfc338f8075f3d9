"""Every check of the catalog fires in at least one test.

:data:`FIRES` names, for each check id of ``checks/*.toml``, the test(s) in which that check
fires and that assert it does. The test below reads the test files (it runs none of them), so
it gives the same answer whichever subset of the suite runs. It fails when:

- a catalog check has no entry (a new check needs a test in which it fires: write it, then
  add ``"check-id": ("test_file.py::test_name",)`` here), or an entry names no catalog check;
- a named test does not exist (renamed or removed);
- a named test does not name its check: the id must appear as a string in the test function,
  its decorators (``parametrize``), or a module-level table the function or its decorators use
  (``EXPECTED = {...}``). A ``log-<kind>`` check may be named by its detector kind instead
  (``found["break-glass"]``): :func:`test_every_detector_kind_is_its_catalog_check` proves that
  a detector's anomaly becomes the finding of that check.

A named test that only asserts a check does *not* fire would still name it: an entry is a
claim a reviewer checks when adding it, as the test function it points to says what it asserts.
"""

from __future__ import annotations

import ast
import functools
import re
import sys

import pandas as pd
from conftest import ROOT

from hipaa_audit.archive.dicom.parser import parse_header
from hipaa_audit.archive.scanner import ArchiveRules, judge
from hipaa_audit.catalog import load_catalog
from hipaa_audit.logs.detect import KINDS, Anomaly
from hipaa_audit.logs.run import anomaly_finding
from hipaa_audit.redaction import Masker

sys.path.insert(0, str(ROOT / "fixtures"))
import generate

TESTS = ROOT / "tests"
THIS = "test_catalog_coverage.py"
ARCHIVE = "test_archive_estate.py::test_every_part_in_one_run"
WEAKNESS = "test_network_rules.py::test_each_weakness_is_one_finding"
REPORTED = "test_network.py::test_each_weakness_is_reported"
NET_FIRES = "test_network_fires.py::"
PLANTED = "test_perm_rules.py::test_each_planted_difference_and_nothing_else"
S3_PLANTED = "test_s3.py::test_every_planted_misconfiguration_is_reported"
DETECT = "test_log_detect.py::"

#: check id -> the tests in which it fires (``file::function``, files under ``tests/``)
FIRES: dict[str, tuple[str, ...]] = {
    # archive and DICOM
    "archive-exposed-phi": (ARCHIVE,),
    "archive-identifier-in-path": (
        "test_phi_never_leaves.py::test_the_folder_is_a_finding_and_masked_ids_are_stable",),
    "archive-name-elided": ("test_bombs.py::test_long_member_names_are_elided_and_stay_distinct",),
    "archive-unencrypted-phi": (ARCHIVE,),
    "archive-unverifiable": (ARCHIVE,),
    "archive-zipcrypto": ("test_containers.py::test_aes_is_protected_and_zipcrypto_is_weak",),
    "dicom-burned-in-annotation": (
        "test_exposure.py::test_exposure_needs_an_identifier_not_a_mere_risk",),
    "dicom-burned-in-text": (ARCHIVE,),
    "dicom-curve-data": (f"{THIS}::test_overlay_curve_and_icon_fire",),
    "dicom-deidentification-declaration": (
        "test_phi_never_leaves.py::test_the_folder_is_a_finding_and_masked_ids_are_stable",),
    "dicom-false-deidentification": (
        "test_pydicom_testfiles.py::test_false_declaration_in_dicomdir_tree",),
    "dicom-icon-image": (f"{THIS}::test_overlay_curve_and_icon_fire",),
    "dicom-identifier-in-text": (
        "test_rules_units.py::test_file_meta_private_information_is_flagged_masked",),
    "dicom-overlay": ("test_pydicom_testfiles.py::test_overlay",
                      f"{THIS}::test_overlay_curve_and_icon_fire"),
    "dicom-private-elements": ("test_pydicom_testfiles.py::test_nested_private_sequence",),
    "dicom-residual-identifier": (ARCHIVE,),
    # assessment
    "assessment-target-not-checked": (
        "test_target_not_checked.py::test_a_configured_path_that_does_not_exist",),
    # network
    "cert-expired": (WEAKNESS,),
    "cert-expiring-soon": (WEAKNESS,),
    "cert-hostname-mismatch": (WEAKNESS,),
    "cert-long-lifetime": (REPORTED,),
    "cert-untrusted": ("test_network_rules.py::test_self_signed_certificate_is_untrusted",),
    "cert-weak-key": (WEAKNESS,),
    "cert-weak-signature": (WEAKNESS,),
    "dicom-plaintext": ("test_network_rules.py::test_plaintext_dicom_and_http", REPORTED),
    "dicom-tls-no-client-auth": (REPORTED,),
    "http-plaintext": ("test_network_rules.py::test_plaintext_dicom_and_http", REPORTED),
    "https-hsts-missing": (WEAKNESS, REPORTED),
    "https-hsts-weak": (WEAKNESS,),
    "network-endpoint-stopped-answering": (
        "test_network.py::test_an_endpoint_that_dies_during_the_scan_is_a_finding",),
    "network-target-unverifiable": (
        "test_network_rules.py::test_failed_commands_are_errors_never_passes",),
    "tls-broken-cipher": (WEAKNESS, REPORTED),
    "tls-cbc-cipher": (WEAKNESS, REPORTED),
    "tls-ccs-injection": (f"{NET_FIRES}test_ccs_injection",),
    "tls-cipher-outside-policy": (WEAKNESS, REPORTED),
    "tls-compression": (f"{NET_FIRES}test_tls_compression",),
    "tls-curve-outside-policy": (f"{NET_FIRES}test_a_group_outside_the_profile",),
    "tls-heartbleed": (WEAKNESS,),
    "tls-insecure-renegotiation": (f"{NET_FIRES}test_client_initiated_renegotiation",),
    "tls-legacy-protocol": (WEAKNESS, REPORTED),
    "tls-no-extended-master-secret": (f"{NET_FIRES}test_no_extended_master_secret",),
    "tls-no-fallback-scsv": (f"{NET_FIRES}test_no_fallback_scsv",),
    "tls-no-forward-secrecy": (WEAKNESS, REPORTED),
    "tls-no-ocsp-stapling": (f"{NET_FIRES}test_no_ocsp_response_is_stapled",),
    "tls-required-protocol-missing": (WEAKNESS, REPORTED),
    "tls-robot": (f"{NET_FIRES}test_robot",),
    "tls-ssl-protocol": (WEAKNESS,),
    "tls-weak-key-exchange": (WEAKNESS, REPORTED),
    # logs
    "log-break-glass": (f"{DETECT}test_break_glass_snooping_deletion_permissions",),
    "log-bulk-export": ("test_logs.py::test_findings_carry_evidence_not_phi",),
    "log-clock-skew": (f"{DETECT}test_dormant_gap_and_skew",),
    "log-dormant-account": (f"{DETECT}test_dormant_gap_and_skew",),
    "log-failed-logins": (f"{DETECT}test_failed_logins_and_spray",),
    "log-integrity": ("test_logs.py::test_hash_chain_tampering",),
    "log-logging-gap": (f"{DETECT}test_dormant_gap_and_skew",),
    "log-mass-deletion": (f"{DETECT}test_break_glass_snooping_deletion_permissions",),
    "log-new-source": (f"{DETECT}test_off_hours_and_new_source",),
    "log-off-hours": (f"{DETECT}test_off_hours_and_new_source",),
    "log-password-spray": (f"{DETECT}test_failed_logins_and_spray",),
    "log-permission-change": (f"{DETECT}test_break_glass_snooping_deletion_permissions",),
    "log-sigma": ("test_logs.py::test_builtin_sigma_rules",),
    "log-snooping": ("test_logs.py::test_patient_list_feeds_the_relationship_checks",),
    "log-storage-change": (f"{DETECT}test_break_glass_snooping_deletion_permissions",),
    "log-unverifiable": ("test_logs.py::test_malformed_records_are_counted_with_their_lines",),
    # permissions
    "perm-account-not-in-roster": (PLANTED,),
    "perm-anyone-access": (PLANTED,),
    "perm-beyond-role": (PLANTED,),
    "perm-cross-account": (PLANTED,),
    "perm-grant-added": ("test_perm_rules.py::test_changes_since_previous_run",),
    "perm-grant-outside-baseline": (PLANTED,),
    "perm-grant-removed": ("test_perm_rules.py::test_changes_since_previous_run",),
    "perm-unexplained-path": (PLANTED,),
    "perm-unverifiable": ("test_perm_rules.py::test_problems_are_unverifiable",),
    # S3
    "s3-access-logging": ("test_s3_fires.py::test_no_access_logging",),
    "s3-cross-account": (S3_PLANTED,),
    "s3-default-encryption": (S3_PLANTED,),
    "s3-kms-for-phi": ("test_s3_fires.py::test_phi_under_s3_managed_keys_fails",),
    "s3-lifecycle-retention": (S3_PLANTED,),
    "s3-mfa-delete": ("test_s3_policy.py::test_retention_checks",),
    "s3-object-lock": (S3_PLANTED,),
    "s3-object-ownership": ("test_s3_fires.py::test_ownership_that_honours_acls",),
    "s3-object-public-acl": ("test_s3.py::test_phi_objects",),
    "s3-object-unencrypted": (S3_PLANTED,),
    "s3-public-access-block": (S3_PLANTED,),
    "s3-public-acl": (S3_PLANTED,),
    "s3-public-policy": (S3_PLANTED,),
    "s3-replication-encryption": (S3_PLANTED,),
    "s3-tls-only": (S3_PLANTED,),
    "s3-unverifiable": (
        "test_s3_policy.py::test_unresolvable_principals_are_unverifiable_in_both_scans",),
    "s3-versioning": (S3_PLANTED,),
}


@functools.cache
def _tree(file: str) -> ast.Module:
    return ast.parse((TESTS / file).read_text(encoding="utf-8"), filename=file)


def _function(file: str, name: str) -> ast.FunctionDef | None:
    for node in ast.walk(_tree(file)):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    return None


def _strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)]


def named_strings(file: str, name: str) -> list[str]:
    """The strings of a test: its body, its decorators, and the module tables they use."""
    func = _function(file, name)
    assert func is not None
    strings = _strings(func)
    used = {n.id for n in ast.walk(func) if isinstance(n, ast.Name)}
    for stmt in _tree(file).body:
        targets = (stmt.targets if isinstance(stmt, ast.Assign)
                   else [stmt.target] if isinstance(stmt, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id in used for t in targets):
            strings += _strings(stmt)
    return strings


def spellings(check_id: str) -> tuple[str, ...]:
    """How a test may name a check: its id, or a log detector's kind."""
    kind = check_id.removeprefix("log-")
    return (check_id, kind) if check_id.startswith("log-") and kind in KINDS else (check_id,)


def names(strings: list[str], check_id: str) -> bool:
    """True when one of ``strings`` names ``check_id`` as a whole word."""
    words = [re.compile(rf"(?<![\w-]){re.escape(s)}(?![\w-])") for s in spellings(check_id)]
    return any(w.search(text) for text in strings for w in words)


def test_every_catalog_check_has_a_test_that_fires_it() -> None:
    catalog = {c.id for c in load_catalog().values()}
    missing = sorted(catalog - set(FIRES))
    assert not missing, (f"checks with no test in which they fire: {missing}; write one and "
                         f"name it in FIRES ({THIS})")
    unknown = sorted(set(FIRES) - catalog)
    assert not unknown, f"FIRES names checks the catalog does not have: {unknown}"
    assert all(FIRES.values())


def test_every_named_test_exists_and_names_its_check() -> None:
    problems = []
    for check_id, tests in sorted(FIRES.items()):
        for test in tests:
            file, _, name = test.partition("::")
            if not (TESTS / file).is_file() or _function(file, name) is None:
                problems.append(f"{check_id}: {test} does not exist")
            elif not names(named_strings(file, name), check_id):
                problems.append(f"{check_id}: {test} does not name it")
    assert not problems, "\n".join(problems)


def test_the_name_check_can_fail() -> None:
    # a whole word only: naming one check is not naming another that starts alike
    assert not names(["s3-public-acl"], "s3-object-public-acl")
    assert not names(["tls-cbc-cipher-x"], "tls-cbc-cipher")
    assert names(['found["break-glass"]', "break-glass"], "log-break-glass")
    assert not names(["break-glass-start"], "log-break-glass")
    # a table only counts when the test uses it
    assert names(named_strings("test_network.py", "test_each_weakness_is_reported"),
                 "cert-long-lifetime")
    assert not names(named_strings("test_network.py", "test_unresolvable_name"),
                     "cert-long-lifetime")


def test_every_detector_kind_is_its_catalog_check() -> None:
    catalog = load_catalog()
    when = pd.Timestamp("2026-11-02T03:00:00Z")
    for kind in KINDS:
        anomaly = Anomaly(kind=kind, subject="u1", subject_kind="user", start=when, end=when,
                          message="m", counts={"events": 1}, baseline="b", event_ids=("e1",),
                          sources=("audit.log",))
        finding = anomaly_finding(anomaly, catalog, "audit.log")
        assert finding.check_id == f"log-{kind}" and finding.check_id in catalog


def test_overlay_curve_and_icon_fire() -> None:
    data = generate.fail_overlay_curve_icon()
    rules = ArchiveRules.build(load_catalog(), Masker(b"k" * 32))
    result = judge(parse_header(data, complete=True), "graphics.dcm", rules, named_dicom=True,
                   head=data)
    fired = {f.check_id: f for f in result.findings}
    assert {"dicom-overlay", "dicom-curve-data", "dicom-icon-image"} <= set(fired)
    assert fired["dicom-curve-data"].locations[0].get("tag_path") == ("50000005",)
    assert fired["dicom-icon-image"].locations[0].get("tag_path") == ("00880200",)
    assert result.coverage.own["dicom-curve-data"] == "fail"

