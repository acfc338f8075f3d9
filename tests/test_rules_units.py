"""Unit tests of the pure pieces of the DICOM rules: value classification and name checks."""

from __future__ import annotations

import pytest

from hipaa_audit.archive.dicom.rules import classify
from hipaa_audit.phi.patterns import looks_like_person_name, safe_harbor_kinds


@pytest.mark.parametrize(
    ("kind", "vr", "text", "declared", "expected"),
    [
        ("patient-name", "PN", "Whitmore^Eleanor", True, "real"),
        ("patient-name", "PN", "SUBJ^0042", True, "dummy"),
        ("patient-name", "PN", "CompressedSamples^CT1", False, "unknown"),
        ("patient-name", "PN", "Last Name^First Name", False, "dummy"),
        ("patient-name", "PN", "", False, "empty"),
        ("patient-id", "LO", "ANON-0042", True, "dummy"),
        ("patient-id", "LO", "219-09-9999", True, "real"),
        ("patient-id", "LO", "4471902", True, "unknown"),
        ("patient-birth-date", "DA", "19610427", True, "real"),
        ("patient-birth-date", "DA", "19000101", True, "dummy"),
        # free text is a dummy only when every word is a placeholder
        ("free-text", "LT", "ANONYMIZED", False, "dummy"),
        ("free-text", "LT", "Patient John Smith, follow-up after a fall", False, "real"),
        ("free-text", "LO", "Study of Smith John", True, "real"),
        ("time", "TM", "101500", False, "real"),
    ],
)
def test_classify(kind: str, vr: str, text: str, declared: bool, expected: str) -> None:
    assert classify(kind, vr, text, declared) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Doe^John", True), ("O'Brien^Mary-Kate", True), ("山田^太郎", True), ("ANON", False),
     ("A^B", False), ("123^456", False), ("Last^First^mid^pre", False)],
)
def test_person_names(text: str, expected: bool) -> None:
    assert looks_like_person_name(text) is expected


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("SSN 219-09-9999", {"ssn"}),
        ("call (555) 201-4477", {"phone"}),
        ("mail e.whitmore@example.org", {"email"}),
        ("MRN: 4471902", {"mrn"}),
        ("seen 04/27/2019", {"date"}),
        ("lives at 12 Harbor View Road", {"address"}),
        ("Patient: Eleanor Whitmore", {"name"}),
        ("CT CHEST W CONTRAST", set()),
        ("Axial 5 mm CT", set()),
        ("patient supine with arms raised", set()),
        ("1.2.840.113619.2.55.3", set()),
    ],
)
def test_safe_harbor(text: str, kinds: set[str]) -> None:
    assert set(safe_harbor_kinds(text)) == kinds
