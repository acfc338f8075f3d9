"""PHI in exports that are not DICOM: CSV/TSV, HL7 v2, FHIR JSON/XML, and free text.

Structure first: the PID segment of HL7 v2, the Patient resources of FHIR, the identifier
columns of a CSV header. Safe Harbor patterns with context otherwise. Precision matters as much
as recall: a file is PHI only when it names a person together with another identifier, or holds
a strong identifier (SSN, medical record number); inventories, configs and aggregate statistics
are not. Results are kinds and counts, never values.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from dataclasses import dataclass

from hipaa_audit.phi.patterns import (
    is_dummy_date,
    looks_like_person_name,
    safe_harbor_counts,
)

#: Identifier kinds strong enough alone to make a file PHI.
STRONG = frozenset({"ssn", "mrn"})

#: CSV header words -> identifier kind (headers are lower-cased, non-letters removed).
CSV_HEADERS: dict[str, str] = {
    "ssn": "ssn", "socialsecuritynumber": "ssn", "socialsecurity": "ssn",
    "mrn": "mrn", "medicalrecordnumber": "mrn", "patientid": "mrn", "patientnumber": "mrn",
    "dob": "birth-date", "birthdate": "birth-date", "dateofbirth": "birth-date",
    "patientbirthdate": "birth-date",
    "name": "name", "patientname": "name", "fullname": "name", "firstname": "name",
    "lastname": "name", "givenname": "name", "familyname": "name", "surname": "name",
    "address": "address", "streetaddress": "address", "street": "address", "zip": "address",
    "zipcode": "address", "postalcode": "address",
    "phone": "phone", "telephone": "phone", "phonenumber": "phone", "mobile": "phone",
    "email": "email", "emailaddress": "email",
    "accession": "accession", "accessionnumber": "accession",
}
#: HL7 v2 PID fields (1-based) -> identifier kind.
PID_FIELDS = {3: "mrn", 5: "name", 7: "birth-date", 11: "address", 13: "phone", 14: "phone",
              19: "ssn"}
#: FHIR Patient elements -> identifier kind.
FHIR_ELEMENTS = {"identifier": "mrn", "name": "name", "birthDate": "birth-date",
                 "address": "address", "telecom": "phone"}

#: The namespace must sit in the opening tag's first 2 KiB: a bounded look, so that thousands
#: of ``<Patient`` without a ``>`` cost linear time.
_FHIR_XML = re.compile(rb"<(Patient|Bundle)\b[^>]{0,2048}http://hl7\.org/fhir")
#: Characters of the first lines given to the CSV dialect sniffer (whose quote guess is
#: quadratic in the length of a line).
SNIFF_CHARS = 4096
_NON_LETTERS = re.compile(r"[^a-z]")


@dataclass(frozen=True, slots=True)
class TextPhi:
    """What a text export holds: its format, identifier kinds with counts, records with PHI."""

    format: str
    kinds: dict[str, int]
    records: int


def analyse(head: bytes) -> TextPhi | None:
    """Return what the first bytes of a text export hold; ``None`` for binary data.

    ``kinds`` is empty when the text holds no PHI by :func:`is_phi`.
    """
    text = _as_text(head)
    if text is None:
        return None
    stripped = text.lstrip("\ufeff \r\n\t")
    if stripped.startswith("MSH|"):
        fmt, kinds, records = "hl7v2", *_hl7(stripped)
    elif stripped.startswith(("{", "[")) and '"resourceType"' in stripped:
        fmt, kinds, records = "fhir-json", *_fhir_json(stripped)
    elif stripped.startswith("<") and _FHIR_XML.search(head):
        fmt, kinds, records = "fhir-xml", *_fhir_xml(stripped)
    elif (table := _csv(stripped)) is not None:
        fmt, kinds, records = "csv", *table
    else:
        fmt, kinds, records = "text", *_free_text(stripped)
    if not is_phi(kinds):
        return TextPhi(fmt, {}, 0)
    return TextPhi(fmt, dict(sorted(kinds.items())), records)


def is_phi(kinds: Counter[str] | dict[str, int]) -> bool:
    """A strong identifier, a person's name with another identifier, or three other kinds."""
    present = {k for k, n in kinds.items() if n}
    return bool(present & STRONG) or ("name" in present and len(present) >= 2) or (
        len(present - {"date"}) >= 3)


def _as_text(head: bytes) -> str | None:
    if not head or b"\x00" in head[:4096]:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 4:  # a character cut at the end of the sample
            text = head[: exc.start].decode("utf-8")
        else:
            text = head.decode("latin-1")
    sample = text[:4096]
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\r\n\t\f")
    return text if controls <= len(sample) // 100 else None


def _hl7(text: str) -> tuple[Counter[str], int]:
    kinds: Counter[str] = Counter()
    records = 0
    for segment in re.split(r"\r\n|\r|\n", text):
        if not segment.startswith("PID|"):
            continue
        fields = segment.split("|")
        found = False
        for index, kind in PID_FIELDS.items():
            if index < len(fields) and fields[index].strip("^~& "):
                kinds[kind] += 1
                found = True
        records += found
    return kinds, records


def _fhir_json(text: str) -> tuple[Counter[str], int]:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return _free_text(text)  # a sample cut short, or nested past the parser: judge as text
    kinds: Counter[str] = Counter()
    records = 0
    for resource in _resources(doc):
        if resource.get("resourceType") != "Patient":
            continue
        found = False
        for element, kind in FHIR_ELEMENTS.items():
            if resource.get(element):
                kinds[kind] += 1
                found = True
        records += found
    return kinds, records


def _resources(doc: object) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    items = doc if isinstance(doc, list) else [doc]
    for item in items:
        if not isinstance(item, dict):
            continue
        if item.get("resourceType") == "Bundle":
            for entry in item.get("entry") or []:
                if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                    out.append(entry["resource"])
        else:
            out.append(item)
    return out


def _fhir_xml(text: str) -> tuple[Counter[str], int]:
    kinds: Counter[str] = Counter()
    patients = text.count("<Patient")
    for element, kind in FHIR_ELEMENTS.items():
        count = len(re.findall(rf"<{element}\b", text))
        if count:
            kinds[kind] += count
    return kinds, patients


def _csv(text: str) -> tuple[Counter[str], int] | None:
    lines = text.splitlines()[:2000]
    if len(lines) < 2:
        return None
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines[:20])[:SNIFF_CHARS], delimiters=",;\t|")
    except csv.Error:
        return None
    rows = list(csv.reader(io.StringIO("\n".join(lines)), dialect))
    header = rows[0]
    if len(header) < 2 or not all(len(r) == len(header) for r in rows[1:-1]):
        return None
    columns = {i: CSV_HEADERS[key] for i, h in enumerate(header)
               if (key := _NON_LETTERS.sub("", h.lower())) in CSV_HEADERS}
    kinds: Counter[str] = Counter()
    records = 0
    for row in rows[1:]:
        found = False
        for i, kind in columns.items():
            if i < len(row) and _plausible(kind, row[i].strip()):
                kinds[kind] += 1
                found = True
        records += found
    return kinds, records


def _plausible(kind: str, value: str) -> bool:
    """True when a CSV cell looks like its column says (so inventories are not PHI)."""
    if not value:
        return False
    if kind == "name":
        return looks_like_person_name(value.replace(",", " "))
    if kind == "birth-date":
        digits = re.sub(r"\D", "", value)
        return len(digits) == 8 and not is_dummy_date(
            digits if digits[:2] in ("19", "20") else digits[4:] + digits[:4])
    if kind == "ssn":
        return bool(dict(safe_harbor_counts(value)).get("ssn"))
    return any(ch.isdigit() for ch in value) or kind in ("address", "email")


def _free_text(text: str) -> tuple[Counter[str], int]:
    kinds: Counter[str] = Counter()
    lines = 0
    for line in text.splitlines():
        pairs = safe_harbor_counts(line)
        if pairs:
            lines += 1
            kinds.update(dict(pairs))
    return kinds, lines
