"""Unit tests of the pure pieces of the DICOM rules: value classification and name checks."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from helpers import load_generator
from pydicom import dcmread
from pydicom.dataset import Dataset

from hipaa_audit.archive.dicom.parser import parse_header
from hipaa_audit.archive.dicom.profile import load_profile
from hipaa_audit.archive.dicom.rules import DicomRules, audit_dicom, classify
from hipaa_audit.catalog import load_catalog
from hipaa_audit.model import Finding
from hipaa_audit.phi.patterns import looks_like_person_name, safe_harbor_kinds
from hipaa_audit.redaction import Masker

pytestmark = pytest.mark.unit


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


#: Text → the Safe Harbor identifier kinds found in it (none in clinical words and UIDs).
SAFE_HARBOR_TEXT: dict[str, set[str]] = {
    "SSN 219-09-9999": {"ssn"},
    "call (555) 201-4477": {"phone"},
    "mail e.whitmore@example.org": {"email"},
    "MRN: 4471902": {"mrn"},
    "seen 04/27/2019": {"date"},
    "lives at 12 Harbor View Road": {"address"},
    "Patient: Eleanor Whitmore": {"name"},
    "CT CHEST W CONTRAST": set(),
    "Axial 5 mm CT": set(),
    "patient supine with arms raised": set(),
    "1.2.840.113619.2.55.3": set(),
}


@pytest.mark.parametrize(("text", "kinds"), SAFE_HARBOR_TEXT.items())
def test_safe_harbor(text: str, kinds: set[str]) -> None:
    assert set(safe_harbor_kinds(text)) == kinds


# -- values that must not pass as labels: private creators, BurnedInAnnotation, file meta ------

def _audit(build: Callable[[Dataset], None], *, meta: dict[str, Any] | None = None,
           reveal: bool = False) -> list[Finding]:
    """Encode a minimal identified image changed by ``build`` and audit it."""
    gen = load_generator()
    ds = gen.identify(gen.image("units"))
    build(ds)
    data = gen.encode(ds)
    if meta:
        parsed = dcmread(io.BytesIO(data), force=True)
        for keyword, value in meta.items():
            setattr(parsed.file_meta, keyword, value)
        buf = io.BytesIO()
        parsed.save_as(buf, enforce_file_format=True)
        data = buf.getvalue()
    header = parse_header(data, complete=True)
    assert header is not None
    rules = DicomRules.build(load_catalog(), load_profile(), Masker(b"k" * 32, reveal=reveal))
    return audit_dicom(header, "units.dcm", rules)


def _creators(findings: list[Finding]) -> list[str]:
    return [str(loc.get("creator")) for f in findings if f.check_id == "dicom-private-elements"
            for loc in f.locations]


@pytest.mark.parametrize(
    "creator",
    ["MRN4471902", "4471902", "219-09-9999", "555-201-4477", "1418 Larkspur Lane",
     "1961-04-27", "19610427", "MRN4471902 GEMS", "Whitmore", "WHITMORE ELEANOR"],
)
def test_identifier_looking_creators_are_masked(creator: str) -> None:
    def build(ds: Dataset) -> None:
        ds.PatientID = "MRN4471902"
        ds.PatientName = "Whitmore^Eleanor"
        ds.private_block(0x0009, creator, create=True).add_new(0x10, "LO", "x")

    labels = _creators(_audit(build))
    assert len(labels) == 1
    assert creator.lower() not in labels[0].lower() and "hmac=" in labels[0]


def test_creator_equal_to_the_files_own_id_is_masked_even_when_vendor_like() -> None:
    """A pseudonym PatientID that reads like a vendor string is still the file's identifier."""
    def build(ds: Dataset) -> None:
        ds.PatientID = "ACME_CORP"
        ds.PatientIdentityRemoved = "YES"
        ds.private_block(0x0009, "ACME_CORP", create=True).add_new(0x10, "LO", "x")
        ds.private_block(0x0011, "GEMS_PARM_01", create=True).add_new(0x10, "LO", "x")

    labels = _creators(_audit(build))
    assert "GEMS_PARM_01" in labels  # a vendor creator is still named
    masked = [label for label in labels if label != "GEMS_PARM_01"]
    assert len(masked) == 1 and "ACME" not in masked[0] and "hmac=" in masked[0]


@pytest.mark.parametrize(("value", "shown"), [
    ("YES", "YES"), ("NO", "NO"), ("", "empty"), ("WHITMORE", "other value"),
    ("Eleanor Whitmore", "other value"),
])
def test_burned_in_annotation_is_never_echoed(value: str, shown: str) -> None:
    def build(ds: Dataset) -> None:
        ds.Modality = "US"
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = "tool"
        ds.add_new(0x00280301, "CS", value)

    findings = _audit(build)
    settings = [str(loc.get("setting", loc.get("evidence"))) for f in findings
                for loc in f.locations if loc.get("keyword") == "BurnedInAnnotation"]
    text = repr([f.as_dict() for f in findings])
    if value not in ("YES", "NO", ""):
        assert value.lower() not in text.lower()
    if shown != "NO":
        assert settings and all(s == shown for s in settings), settings


def test_file_meta_private_information_is_flagged_masked() -> None:
    planted = b"Whitmore^Eleanor MRN4471902"
    findings = _audit(lambda ds: None, meta={
        "PrivateInformationCreatorUID": "Whitmore",  # not a UID: never echoed either
        "PrivateInformation": planted,
    })
    locs = [loc for f in findings if f.check_id == "dicom-residual-identifier"
            for loc in f.locations if loc.get("tag_path") == ("00020102",)]
    assert len(locs) == 1 and "hmac=" in str(locs[0].get("evidence"))
    text = repr([f.as_dict() for f in findings]).lower()
    assert "whitmore" not in text and "4471902" not in text
    in_text = [loc for f in findings if f.check_id == "dicom-identifier-in-text"
               for loc in f.locations if loc.get("tag_path") == ("00020102",)]
    assert in_text, "its text is searched for identifiers too"
    shown = repr([f.as_dict() for f in _audit(lambda ds: None, reveal=True, meta={
        "PrivateInformationCreatorUID": "1.2.3", "PrivateInformation": planted})])
    assert "MRN4471902" in shown  # the assertions above could fail


def test_a_patient_named_path_alone_does_not_make_a_file_hold_phi() -> None:
    """Reading the file shows no more than listing its folder: no exposure finding for that."""
    from hipaa_audit.archive.pathnames import path_finding
    from hipaa_audit.archive.scanner import holds_phi
    from hipaa_audit.model import AssetResult

    catalog = load_catalog()
    masker = Masker(b"k" * 32)
    named = path_finding("share/Doe_John_MRN12345678/IM1.dcm",
                         catalog["archive-identifier-in-path"], masker)
    assert named is not None and named.severity.value == "high"
    assert not holds_phi([AssetResult(named.asset, findings=[named])])
    from hipaa_audit.evidence import DicomElement
    from hipaa_audit.model import Location

    residual = catalog["dicom-residual-identifier"].finding(named.asset, "x", locations=(
        Location.of_evidence(DicomElement(
            tag_path=("00100010",), keyword="PatientName", path="PatientName", vr="PN",
            kind="patient-name", severity="high", evidence=masker.evidence("Doe^John", "PN"))),))
    assert holds_phi([AssetResult(named.asset, findings=[named, residual])])


def _private_text_locations(findings: list[Finding]) -> dict[tuple[str, ...], dict[str, Any]]:
    return {loc.get("tag_path"): loc.as_dict() for f in findings
            if f.check_id == "dicom-identifier-in-text" for loc in f.locations}


@pytest.mark.parametrize(
    ("vr", "value"),
    [("LO", "Whitmore^Eleanor"), ("PN", "WHITMORE^ELEANOR^M"), ("LO", "O'Neil-Smith^Mary Ann"),
     ("UN", "Whitmore^Eleanor")],
)
def test_a_name_in_an_unknown_private_element_is_located(vr: str, value: str) -> None:
    """Issue 17 item 6: a patient name in (0029,1010) under an unknown creator, in a file whose
    own name was removed, is located at the element itself with masked evidence."""

    def build(ds: Dataset) -> None:
        ds.PatientName = "ANONYMOUS"
        ds.PatientID = "SUBJ-0042"
        block = ds.private_block(0x0029, "ACME 1.0", create=True)
        block.add_new(0x10, vr, value.encode() if vr == "UN" else value)

    findings = _audit(build)
    located = _private_text_locations(findings)
    assert ("00291010",) in located, located
    loc = located[("00291010",)]
    assert loc["found"] == {"person-name": 1}
    assert "Whitmore" not in repr(loc) and "WHITMORE" not in repr(loc)
    in_text = next(f for f in findings if f.check_id == "dicom-identifier-in-text")
    assert in_text.severity.value == "high"


@pytest.mark.parametrize(
    "value",
    ["ORIGINAL^PRIMARY", "ANONYMOUS^SUBJECT", "SUBJ^0042", "series tag 7", "HEAD^NECK",
     "Last Name^First Name", "1.2.840.10008.5.1.4", "V2.1^build^77"],
)
def test_private_values_that_are_not_names_stay_unlocated(value: str) -> None:
    """Defined terms, pseudonyms, templates and versions in a private element are no name."""

    def build(ds: Dataset) -> None:
        ds.PatientName = "ANONYMOUS"
        ds.PatientID = "SUBJ-0042"
        ds.private_block(0x0029, "ACME 1.0", create=True).add_new(0x10, "LO", value)

    assert ("00291010",) not in _private_text_locations(_audit(build))


def test_a_private_element_equal_to_the_files_own_id_is_located() -> None:
    """A private copy of the file's own patient ID is located at the element, masked."""

    def build(ds: Dataset) -> None:
        ds.private_block(0x0029, "ACME 1.0", create=True).add_new(0x10, "LO", ds.PatientID)

    loc = _private_text_locations(_audit(build))[("00291010",)]
    assert loc["found"]["patient-id-value"] == 1


def test_an_id_in_an_unknown_private_element_is_located() -> None:
    """A Medicare MBI (its shape is its own context) in a private element is located there."""

    def build(ds: Dataset) -> None:
        ds.PatientName = "ANONYMOUS"
        ds.PatientID = "SUBJ-0042"
        ds.private_block(0x0029, "ACME 1.0", create=True).add_new(0x11, "LO", "1EG4-TE5-MK73")

    loc = _private_text_locations(_audit(build))[("00291011",)]
    assert loc["found"] == {"mbi": 1} and "MK73" not in repr(loc)
