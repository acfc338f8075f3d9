"""The DICOM residual-identifier rules: pure functions from a parsed header to findings.

Input is a :class:`~hipaa_audit.archive.dicom.parser.ParsedHeader` (every element with its
sequence path); output is a list of findings whose evidence is masked. No I/O happens here.

What a file declares changes what is expected: PatientIdentityRemoved, DeidentificationMethod
and the CID 7050 option codes select the Table E.1-1 action of each attribute. A pseudonym or
dummy where the profile allows one is no finding; a real-looking patient identifier in a file that
declares de-identification is a critical one.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache, lru_cache

from pydicom.charset import convert_encodings, decode_bytes
from pydicom.datadict import keyword_for_tag

from hipaa_audit.archive.dicom.parser import Element, ParsedHeader
from hipaa_audit.archive.dicom.profile import (
    KEEP_ACTIONS,
    OPTION_CODES,
    OPTION_NAMES,
    REMOVE_ACTIONS,
    Profile,
)
from hipaa_audit.catalog import Catalog, Check
from hipaa_audit.evidence import (
    DicomBlock,
    DicomElement,
    DicomSetting,
    DicomTextMatch,
    DicomValue,
)
from hipaa_audit.model import Finding, Location, Severity, worst
from hipaa_audit.phi.patterns import (
    PSEUDONYM_WORDS,
    is_dummy_date,
    is_template_name,
    looks_like_person_name,
    looks_like_pn_name,
    looks_like_pseudonym,
    safe_harbor_counts,
    safe_harbor_kinds,
    words_of,
)
from hipaa_audit.redaction import Masker

SPECIFIC_CHARACTER_SET = 0x00080005
IMAGE_TYPE = 0x00080008
SOP_CLASS_UID = 0x00080016
SOP_INSTANCE_UID = 0x00080018
MEDIA_STORAGE_SOP_INSTANCE_UID = 0x00020003
MODALITY = 0x00080060
PATIENT_IDENTITY_REMOVED = 0x00120062
DEIDENTIFICATION_METHOD = 0x00120063
DEIDENTIFICATION_CODES = 0x00120064
CODE_VALUE = 0x00080100
BURNED_IN_ANNOTATION = 0x00280301
PRIVATE_INFORMATION = 0x00020102
ICON_IMAGE_SEQUENCE = 0x00880200

TEXT_VRS = frozenset({"LO", "LT", "SH", "ST", "UT", "UC", "PN"})
NUMERIC_TEXT_VRS = frozenset({"TM", "IS", "DS", "AS", "US", "UL", "SS", "SL", "FL", "FD"})
FREE_TEXT_VRS = frozenset({"LO", "LT", "SH", "ST", "UT", "UC"})
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"

#: Attributes whose values identify the patient directly, by kind.
PATIENT_KINDS: dict[int, str] = {
    0x00100010: "patient-name",  # PatientName
    0x00101001: "patient-name",  # OtherPatientNames
    0x00101005: "patient-name",  # PatientBirthName
    0x00101060: "patient-name",  # PatientMotherBirthName
    0x00101002: "patient-id",  # OtherPatientIDsSequence (its items hold PatientID)
    0x00100020: "patient-id",  # PatientID
    0x00101000: "patient-id",  # OtherPatientIDs
    0x00101090: "patient-id",  # MedicalRecordLocator
    0x00100030: "patient-birth-date",
    0x00101040: "patient-address",
    0x00102154: "patient-phone",
    0x00102155: "patient-phone",  # PatientTelecomInformation
    0x00080050: "accession",
}
#: Kinds that make a false declaration when a real value remains.
DIRECT_KINDS = frozenset(
    {"patient-name", "patient-id", "patient-birth-date", "patient-address", "patient-phone"}
)

_SAFE_CREATOR = re.compile(r"^[A-Za-z0-9 _.:/+-]{1,64}$")
#: A run of digits as long as a record number, a birth date or a phone number: no vendor's
#: private creator needs one, so a creator holding one is masked.
_LONG_DIGITS = re.compile(r"\d{5,}")


@dataclass(frozen=True, slots=True)
class DicomRules:
    """Everything the DICOM rules need, built once per process: checks, table, masker."""

    residual: Check
    false_deid: Check
    in_text: Check
    private: Check
    overlay: Check
    curve: Check
    burned_in: Check
    icon: Check
    declaration: Check
    profile: Profile
    masker: Masker
    residual_severity: dict[str, Severity]
    text_severity: dict[str, Severity]
    #: The catalog parameters the rules read, taken once (not per file).
    safe_creators: frozenset[str]
    high_risk_modalities: frozenset[str]
    secondary_capture_modalities: frozenset[str]
    #: The ids of every check these rules evaluate on a DICOM file.
    check_ids: tuple[str, ...] = field(init=False, default=())

    @classmethod
    def build(cls, catalog: Catalog, profile: Profile, masker: Masker) -> DicomRules:
        """Take the DICOM checks from the catalog."""
        burned_in = catalog["dicom-burned-in-annotation"]
        return cls(
            residual=catalog["dicom-residual-identifier"],
            false_deid=catalog["dicom-false-deidentification"],
            in_text=catalog["dicom-identifier-in-text"],
            private=catalog["dicom-private-elements"],
            overlay=catalog["dicom-overlay"],
            curve=catalog["dicom-curve-data"],
            burned_in=burned_in,
            icon=catalog["dicom-icon-image"],
            declaration=catalog["dicom-deidentification-declaration"],
            profile=profile,
            masker=masker,
            residual_severity=_severity_map(catalog["dicom-residual-identifier"]),
            text_severity=_severity_map(catalog["dicom-identifier-in-text"]),
            safe_creators=_param_set(catalog["dicom-private-elements"], "safe_private_creators"),
            high_risk_modalities=_param_set(burned_in, "high_risk_modalities"),
            secondary_capture_modalities=_param_set(burned_in, "secondary_capture_modalities"),
        )

    def __post_init__(self) -> None:
        checks = (self.residual, self.false_deid, self.in_text, self.private, self.overlay,
                  self.curve, self.burned_in, self.icon, self.declaration)
        object.__setattr__(self, "check_ids", tuple(c.id for c in checks))


def _param_set(check: Check, name: str) -> frozenset[str]:
    """Read a check's list parameter ``name`` as a set."""
    return frozenset(check.params.get(name, []))


def _severity_map(check: Check) -> dict[str, Severity]:
    """Read a check's ``severity_by_kind`` parameter (kind -> severity name)."""
    raw: dict[str, str] = check.params.get("severity_by_kind", {})
    return {kind: Severity(name) for kind, name in raw.items()}


@cache
def keyword_of(tag: int) -> str:
    """Return the dictionary keyword of ``tag``, or ``(GGGG,EEEE)`` when it has none."""
    kw = keyword_for_tag(tag) if not (tag >> 16) & 1 else ""
    return kw or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def tag_path(el: Element) -> tuple[str, ...]:
    """Return the element's tag path, outermost sequence first, as 8 upper-case hex digits."""
    return element_paths(el.path, el.tag)[0]


def readable_path(el: Element) -> str:
    """Return e.g. ``RequestAttributesSequence[0].RequestedProcedureDescription``."""
    return element_paths(el.path, el.tag)[1]


class TextDecoder:
    """Decodes text values with the data set's Specific Character Set (pydicom's codecs)."""

    def __init__(self, charset: bytes | None) -> None:
        terms = []
        if charset:
            terms = [t.strip() for t in charset.decode("ascii", "replace").split("\\")]
        try:
            self.encodings = convert_encodings(terms or ["ISO_IR 6"])
        except (LookupError, ValueError):
            self.encodings = ["iso8859"]

    def decode(self, value: bytes) -> str:
        """Return ``value`` as text, without padding; never raises."""
        value = value.rstrip(b"\x00 ")
        if value.isascii():
            return value.decode("ascii")
        try:
            return decode_bytes(value, self.encodings, {0x5C, 0x5E, 0x3D})
        except Exception:  # a malformed value is still evidence; fall back byte-for-byte
            return value.decode("latin-1")


#: Longest Specific Character Set value whose decoder is remembered (real ones are short).
CACHED_CHARSET = 128


def text_decoder(charset: bytes | None) -> TextDecoder:
    """Return the decoder for a Specific Character Set value; remembered for short values."""
    if charset is not None and len(charset) > CACHED_CHARSET:
        return TextDecoder(charset)
    return _cached_decoder(charset)


_cached_decoder = lru_cache(maxsize=64)(TextDecoder)


def kind_of(tag: int, keyword: str, vr: str) -> str:
    """Classify an E.1-1 attribute by the kind of identifier it holds."""
    kind = PATIENT_KINDS.get(tag)
    if kind is not None:
        return kind
    if vr == "PN":
        return "person-name"
    if vr in ("DA", "DT"):
        return "date"
    if vr == "TM":
        return "time"
    if keyword.startswith(("Institution", "Department", "Station")):
        return "institution"
    if "Device" in keyword or "Serial" in keyword or keyword.startswith("Manufacturer"):
        return "device"
    if keyword.endswith(("ID", "IDs", "Number", "Numbers")):
        return "identifier"
    if vr in FREE_TEXT_VRS:
        return "free-text"
    return "other"


@lru_cache(maxsize=16384)
def classify(kind: str, vr: str, text: str, declared: bool) -> str:
    """Return ``empty``, ``dummy``, ``real`` or ``unknown`` for a value of a given kind.

    A name mixing words and digits (``SUBJ^0042``, ``CompressedSamples^CT1``) reads as a
    pseudonym only in a file that declares de-identification; elsewhere it may be a real label
    (``Twin 2``) and stays ``unknown``. An identifier is a dummy when it carries a pseudonym
    word (``ANON-0042``); free text only when every word is one (``ANONYMIZED``), so that
    ``Patient John Smith`` stays real. Cached: a study's files repeat the same values.
    """
    if not text.strip(" \\^="):
        return "empty"
    if vr == "PN" or kind == "patient-name":
        if looks_like_person_name(text):
            return "real"
        if PSEUDONYM_WORDS.intersection(words_of(text)) or is_template_name(text):
            return "dummy"
        return "dummy" if declared and looks_like_pseudonym(text) else "unknown"
    if vr in ("DA", "DT") or kind == "patient-birth-date":
        return "dummy" if is_dummy_date(text) else "real"
    if vr in NUMERIC_TEXT_VRS:
        return "real"
    words = {w for w in words_of(text) if not w.isdigit()}
    if kind in ("patient-id", "accession", "identifier"):
        if PSEUDONYM_WORDS.intersection(words):
            return "dummy"
        return "real" if safe_harbor_kinds(text).get("ssn") else "unknown"
    if words and PSEUDONYM_WORDS.issuperset(words):
        return "dummy"
    return "real"


@lru_cache(maxsize=4096)
def attribute(tag: int, vr: str) -> tuple[str, str]:
    """Return (keyword, kind of identifier) for a Table E.1-1 attribute."""
    keyword = keyword_of(tag)
    return keyword, kind_of(tag, keyword, vr)


@lru_cache(maxsize=16384)
def element_paths(path: tuple[tuple[int, int], ...], tag: int) -> tuple[tuple[str, ...], str]:
    """Return (tag_path, readable path) of the element ``tag`` at sequence ``path``."""
    steps = [f"{keyword_of(seq)}[{i}]" for seq, i in path]
    steps.append(keyword_of(tag))
    return (*(f"{seq:08X}" for seq, _ in path), f"{tag:08X}"), ".".join(steps)


@dataclass(slots=True)
class _PrivateBlock:
    first: Element
    creator: str | None = None
    count: int = 0


@dataclass(slots=True)
class _Scan:
    """Working state of one file's audit."""

    residual: list[tuple[Location, Severity, str]] = field(default_factory=list)
    false_deid: list[tuple[Location, str]] = field(default_factory=list)
    overlay: list[Location] = field(default_factory=list)
    curve_groups: Counter[int] = field(default_factory=Counter)
    curve_first: dict[int, Element] = field(default_factory=dict)
    icon: Element | None = None
    blocks: dict[tuple[object, int, int], _PrivateBlock] = field(default_factory=dict)
    texts: list[tuple[Element, str]] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    phrases: set[str] = field(default_factory=set)
    top: dict[int, Element] = field(default_factory=dict)


def audit_dicom(header: ParsedHeader, asset: str, rules: DicomRules) -> list[Finding]:
    """Evaluate every DICOM check on one parsed header; return the findings (masked)."""
    return audit_dicom_terms(header, asset, rules)[0]


def audit_dicom_terms(
    header: ParsedHeader, asset: str, rules: DicomRules
) -> tuple[list[Finding], frozenset[str], frozenset[str]]:
    """Like :func:`audit_dicom`, and also return the file's own identifiers found on the way.

    The identifiers are name words and ID phrases, as :func:`identifier_terms` gives them;
    the path check looks for them in the file's own path.
    """
    top = {el.tag: el for el in header.elements if not el.path}
    decoder = text_decoder(_value(top.get(SPECIFIC_CHARACTER_SET)))
    declared, options, declared_how = _declaration(header.elements, top, decoder)
    actions = rules.profile.actions(options)
    masker = rules.masker
    scan = _Scan(top=top)
    kind_severity = rules.residual_severity

    for el in header.elements:
        tag = el.tag
        group = tag >> 16
        if group & 1:
            _private(el, scan, decoder)
            continue
        vr = el.vr
        if tag == ICON_IMAGE_SEQUENCE and scan.icon is None and el.length:
            scan.icon = el
        action = actions.get(tag)
        if action is None:
            if tag == PRIVATE_INFORMATION:
                _private_information(el, scan, rules)
            elif group & 0xFF00 in (0x5000, 0x6000):
                _repeating_group(el, scan, rules, options, decoder)
            elif vr in FREE_TEXT_VRS and el.value:
                scan.texts.append((el, decoder.decode(el.value)))
            continue
        if vr == "SQ" or el.value is None or action in KEEP_ACTIONS:
            if vr in TEXT_VRS and el.value and tag not in PATIENT_KINDS:
                scan.texts.append((el, decoder.decode(el.value)))
            continue
        if action not in REMOVE_ACTIONS or not el.value:
            continue
        text = decoder.decode(el.value) if vr in TEXT_VRS else _ascii(el.value)
        keyword, kind = attribute(tag, vr)
        state = classify(kind, vr, text, declared)
        if state in ("empty", "dummy"):
            continue
        if kind in DIRECT_KINDS or kind == "accession":
            _collect_tokens(scan, kind, text)
        elif vr in FREE_TEXT_VRS:
            scan.texts.append((el, text))
        false_declaration = declared and state == "real" and kind in DIRECT_KINDS
        if false_declaration:
            severity = rules.false_deid.severity
        elif declared and state == "unknown":
            severity = Severity.LOW  # may well be a pseudonym: say so, but not loudly
        else:
            severity = kind_severity.get(kind, Severity.MEDIUM)
        where, path = element_paths(el.path, tag)
        loc = Location((
            ("tag_path", where), ("keyword", keyword), ("path", path), ("vr", vr), ("kind", kind),
            ("action", action), ("severity", severity.value),
            ("evidence", masker.evidence(text, vr)),
        ))
        if false_declaration:
            scan.false_deid.append((loc, kind))
        else:
            scan.residual.append((loc, severity, kind))

    _meta_uid(scan, rules, declared, options)
    findings: list[Finding] = []
    _residual_findings(findings, scan, rules, asset, declared, declared_how)
    _text_findings(findings, scan, rules, asset, declared)
    _private_findings(findings, scan, rules, asset, options, decoder)
    _graphics_findings(findings, scan, rules, asset)
    _burned_in_findings(findings, header, top, rules, asset, options)
    _declaration_findings(findings, header, top, rules, asset, declared, options)
    return findings, frozenset(scan.tokens), frozenset(scan.phrases)


def _meta_uid(scan: _Scan, rules: DicomRules, declared: bool, options: frozenset[str]) -> None:
    """A de-identified file whose file meta keeps a UID other than SOPInstanceUID leaks it.

    Tools that replace SOPInstanceUID but forget MediaStorageSOPInstanceUID (0002,0003) leave
    the original UID in the file meta; the two must be equal in a valid file.
    """
    if not declared or "retain_uids" in options:
        return
    meta = scan.top.get(MEDIA_STORAGE_SOP_INSTANCE_UID)
    sop = scan.top.get(SOP_INSTANCE_UID)
    if meta is None or sop is None or not meta.value or not sop.value:
        return
    meta_uid, sop_uid = _ascii(meta.value), _ascii(sop.value)
    if meta_uid == sop_uid:
        return
    loc = Location.of_evidence(DicomElement(
        tag_path=tag_path(meta), keyword="MediaStorageSOPInstanceUID", path=readable_path(meta),
        vr="UI", kind="uid", action="U", severity=Severity.MEDIUM.value,
        evidence=rules.masker.evidence(meta_uid, "UI"),
        reason="differs from SOPInstanceUID: the file meta kept a UID the data set replaced",
    ))
    scan.residual.append((loc, Severity.MEDIUM, "uid"))


def _private_information(el: Element, scan: _Scan, rules: DicomRules) -> None:
    """File-meta PrivateInformation (0002,0102): opaque bytes of the creator's choosing.

    PS3.15 Table E.1-1 does not list the file meta, yet this element can carry anything,
    identifiers included. A value is a residual finding (masked evidence); printable text is
    also searched for identifiers like any free text.
    """
    if el.value is None:  # too long to copy: its size is the evidence
        if not el.length:
            return
        evidence = f"{el.vr} {el.length} bytes"
    else:
        if not el.value.strip(b"\x00 "):
            return
        text = el.value.rstrip(b"\x00 ").decode("latin-1")
        if _printable(el.value):
            scan.texts.append((el, text))
        evidence = rules.masker.evidence(text, el.vr)
    where, path = element_paths(el.path, el.tag)
    loc = Location((
        ("tag_path", where), ("keyword", "PrivateInformation"), ("path", path), ("vr", el.vr),
        ("kind", "private-information"), ("severity", Severity.MEDIUM.value),
        ("evidence", evidence),
        ("reason", "the file meta carries private data that de-identification must remove"),
    ))
    scan.residual.append((loc, Severity.MEDIUM, "private-information"))


def identifier_terms(header: ParsedHeader) -> tuple[frozenset[str], frozenset[str]]:
    """Return the file's own patient identifiers as words and phrases to look for elsewhere.

    Words are name parts; phrases are IDs, accession numbers, telephone numbers and the birth
    date in its usual spellings. Pseudonyms and dummies are left out. Used by ``--ocr``.
    """
    top = {el.tag: el for el in header.elements if not el.path}
    decoder = text_decoder(_value(top.get(SPECIFIC_CHARACTER_SET)))
    declared = _declaration(header.elements, top, decoder)[0]
    scan = _Scan()
    for el in header.elements:
        kind = PATIENT_KINDS.get(el.tag)
        if kind is None or not el.value:
            continue
        text = decoder.decode(el.value) if el.vr in TEXT_VRS else _ascii(el.value)
        if classify(kind, el.vr, text, declared) in ("real", "unknown"):
            _collect_tokens(scan, kind, text)
    return frozenset(scan.tokens), frozenset(scan.phrases)


def _value(el: Element | None) -> bytes | None:
    return None if el is None else el.value


def _ascii(value: bytes) -> str:
    return value.rstrip(b"\x00 ").decode("ascii", "replace")


def _declaration(
    elements: list[Element], top: dict[int, Element], decoder: TextDecoder
) -> tuple[bool, frozenset[str], str]:
    """Return (declares de-identification, option columns declared, how it was declared)."""
    removed = _ascii(_value(top.get(PATIENT_IDENTITY_REMOVED)) or b"").upper() == "YES"
    method = decoder.decode(_value(top.get(DEIDENTIFICATION_METHOD)) or b"")
    codes = set()
    if DEIDENTIFICATION_CODES in top:
        codes = {
            _ascii(el.value)
            for el in elements
            if el.tag == CODE_VALUE and el.value and el.path
            and el.path[0][0] == DEIDENTIFICATION_CODES
        }
    options = {OPTION_CODES[c] for c in codes if OPTION_CODES.get(c)}
    lowered = method.lower()
    options.update(col for name, col in OPTION_NAMES.items() if name in lowered)
    how = []
    if removed:
        how.append("PatientIdentityRemoved YES")
    if method.strip():
        how.append("a DeidentificationMethod")
    if codes:
        how.append("DeidentificationMethodCodeSequence")
    declared = bool(how)
    return declared, frozenset(o for o in options if o is not None), ", ".join(how)


def _collect_tokens(scan: _Scan, kind: str, text: str) -> None:
    """Remember an identifier value so its copies can be found in free text."""
    if kind == "patient-name":
        for part in re.split(r"[\^=\s,]+", text.lower()):
            if len(part) >= 3 and part.isalpha() and part not in PSEUDONYM_WORDS:
                scan.tokens.add(part)
    elif kind == "patient-birth-date" and len(text) >= 8 and text[:8].isdigit():
        y, m, d = text[:4], text[4:6], text[6:8]
        scan.phrases.update({f"{y}{m}{d}", f"{y}-{m}-{d}", f"{m}/{d}/{y}", f"{d}.{m}.{y}"})
    elif kind in ("patient-id", "accession", "patient-phone"):
        for part in text.split("\\"):
            part = part.strip().lower()
            if len(part) >= 4:
                scan.phrases.add(part)


def _private(el: Element, scan: _Scan, decoder: TextDecoder) -> None:
    elem = el.tag & 0xFFFF
    group = el.tag >> 16
    if elem == 0:
        return
    if 0x10 <= elem <= 0xFF:
        key = (el.path, group, elem)
        block = scan.blocks.setdefault(key, _PrivateBlock(first=el))
        block.first = el
        block.creator = decoder.decode(el.value or b"")
        return
    key = (el.path, group, elem >> 8 if elem >= 0x1000 else -1)
    block = scan.blocks.setdefault(key, _PrivateBlock(first=el))
    block.count += 1
    if el.value and el.vr != "SQ":
        if el.vr in TEXT_VRS:
            scan.texts.append((el, decoder.decode(el.value)))
        elif el.vr in ("UN", "OB") and len(el.value) <= 4096 and _printable(el.value):
            scan.texts.append((el, el.value.rstrip(b"\x00 ").decode("latin-1")))


_PRINTABLE = bytes(range(32, 127)) + b"\t\n\r"


def _printable(value: bytes) -> bool:
    """True when ``value`` is printable ASCII text (so worth scanning as text)."""
    stripped = value.rstrip(b"\x00 ")
    return bool(stripped) and not stripped.translate(None, _PRINTABLE)


def _repeating_group(
    el: Element, scan: _Scan, rules: DicomRules, options: frozenset[str], decoder: TextDecoder
) -> None:
    row = rules.profile.row_for(el.tag)
    if row is None:
        return
    if row is rules.profile.curve:
        scan.curve_groups[el.tag >> 16] += 1
        scan.curve_first.setdefault(el.tag >> 16, el)
        return
    text = decoder.decode(el.value) if el.value and el.vr in TEXT_VRS else ""
    if row is rules.profile.overlay_comments and text:
        scan.texts.append((el, text))
    if row.action(options) in KEEP_ACTIONS or not el.length:
        return
    evidence = (
        rules.masker.evidence(text, el.vr) if text else f"{el.vr} {el.length} bytes of overlay bits"
    )
    scan.overlay.append(
        Location.of_evidence(DicomValue(tag_path=tag_path(el), keyword=row.keyword or "OverlayData",
                                        path=readable_path(el), vr=el.vr, evidence=evidence))
    )


def _names(locs: Iterable[Location]) -> str:
    names: list[str] = []
    for loc in locs:
        kw = str(loc.get("keyword"))
        if kw not in names:
            names.append(kw)
    shown = ", ".join(names[:8])
    return shown + (f" and {len(names) - 8} more" if len(names) > 8 else "")


def _residual_findings(
    out: list[Finding], scan: _Scan, rules: DicomRules, asset: str, declared: bool, how: str
) -> None:
    if scan.false_deid:
        locs = tuple(loc for loc, _ in scan.false_deid)
        kinds = sorted({k for _, k in scan.false_deid})
        out.append(rules.false_deid.finding(
            asset,
            f"The file declares de-identification ({how}) but {len(locs)} patient attribute(s) "
            f"hold real-looking values ({', '.join(kinds)}): {_names(locs)}. The declaration "
            "is false.",
            locations=locs,
        ))
    if scan.residual:
        locs = tuple(loc for loc, _, _ in scan.residual)
        severity = worst(s for _, s, _ in scan.residual)
        by_severity = [loc for loc, _, _ in sorted(scan.residual, key=lambda r: -r[1].rank)]
        direct = sorted({k for _, s, k in scan.residual if k in DIRECT_KINDS or k == "accession"})
        basis = (
            f"direct patient identifiers remain ({', '.join(direct)})"
            if direct and severity >= Severity.HIGH
            else f"the most sensitive is {severity.value}"
        )
        context = (
            "The file declares de-identification; values that may be pseudonyms are rated low."
            if declared
            else "The file does not declare de-identification."
        )
        out.append(rules.residual.finding(
            asset,
            f"{len(locs)} attribute(s) that PS3.15 Table E.1-1 says to remove or replace still "
            f"hold values: {_names(by_severity)}; {basis}. {context}",
            severity=severity,
            locations=locs,
        ))


def _text_findings(
    out: list[Finding], scan: _Scan, rules: DicomRules, asset: str, declared: bool
) -> None:
    check = rules.in_text
    sev_by_kind = rules.text_severity
    locs: list[Location] = []
    severities: list[Severity] = []
    totals: Counter[str] = Counter()
    tokens = scan.tokens
    phrases = scan.phrases
    for el, text in scan.texts:
        pairs = safe_harbor_counts(text)
        names = len(words_of(text) & tokens) if tokens else 0
        copies = 0
        if phrases:
            lowered = text.lower()
            copies = sum(1 for phrase in phrases if phrase in lowered)
        # a private element's attribute says nothing of its meaning: its shape has to
        shaped = int(bool((el.tag >> 16) & 1 and not names and looks_like_pn_name(text)))
        if not (pairs or names or copies or shaped):
            continue
        kinds = dict(pairs)
        if shaped:
            kinds["person-name"] = shaped
        if names:
            kinds["patient-name-value"] = names
        if copies:
            kinds["patient-id-value"] = copies
        totals.update(kinds)
        severities.extend(sev_by_kind.get(_base_kind(k), Severity.MEDIUM) for k in kinds)
        locs.append(Location.of_evidence(DicomTextMatch(
            tag_path=tag_path(el), keyword=keyword_of(el.tag), path=readable_path(el), vr=el.vr,
            found=dict(sorted(kinds.items())), evidence=rules.masker.evidence(text, el.vr),
        )))
    if not locs:
        return
    severity = worst(severities)
    if declared and severity >= Severity.HIGH:
        severity = Severity.CRITICAL
    summary = ", ".join(f"{k} x{n}" for k, n in sorted(totals.items()))
    out.append(check.finding(
        asset,
        f"{len(locs)} text attribute(s) contain identifiers ({summary}): {_names(locs)}."
        + (" The file declares de-identification, which these copies contradict."
           if declared and severity is Severity.CRITICAL else ""),
        severity=severity,
        locations=tuple(locs),
    ))


def _base_kind(kind: str) -> str:
    return {"patient-name-value": "name", "patient-id-value": "patient-id",
            "person-name": "name"}.get(kind, kind)


def _private_findings(
    out: list[Finding], scan: _Scan, rules: DicomRules, asset: str, options: frozenset[str],
    decoder: TextDecoder,
) -> None:
    if not scan.blocks:
        return
    check = rules.private
    safe = rules.safe_creators
    retain_safe = "retain_safe_private" in options
    own = _own_values(scan.top, decoder)
    locs: list[Location] = []
    for block in scan.blocks.values():
        if block.count == 0:
            continue  # a creator reserving a block it never uses
        creator = block.creator
        label: str
        if creator is None:
            label = "(no private creator)"
        elif _creator_is_shown(creator, safe, scan, own):
            if retain_safe and creator in safe:
                continue
            label = creator
        else:
            label = rules.masker.evidence(creator, "LO")
        locs.append(Location.of_evidence(DicomBlock(
            tag_path=tag_path(block.first), keyword="PrivateCreator",
            path=readable_path(block.first), creator=label, elements=block.count,
        )))
    if not locs:
        return
    count = sum(int(loc.get("elements", 0)) for loc in locs)
    why = (
        "their creators are not on the catalog's safe list although Retain Safe Private is "
        "declared" if retain_safe else "the file does not declare Retain Safe Private"
    )
    out.append(check.finding(
        asset,
        f"{count} private element(s) in {len(locs)} block(s) remain and {why}.",
        locations=tuple(locs),
    ))


def _own_values(top: dict[int, Element], decoder: TextDecoder) -> frozenset[str]:
    """Return the file's own patient identifier values (and their parts), lower-cased.

    Every value counts, pseudonyms included: a private creator equal to one is masked.
    """
    values: set[str] = set()
    for tag in PATIENT_KINDS:
        el = top.get(tag)
        if el is None or not el.value or el.vr == "SQ":
            continue
        text = decoder.decode(el.value).strip().lower()
        values.update(p.strip(" ^=") for p in re.split(r"[\\^=]", text))
        values.add(text)
    values.discard("")
    return frozenset(values)


def _creator_is_shown(
    creator: str, safe: frozenset[str], scan: _Scan, own: frozenset[str]
) -> bool:
    """True when a private creator may be written as it is, False when it must be masked.

    A creator is data read from the file like any value: it is shown only when it cannot be
    an identifier. One that holds the file's own patient identifiers (name parts, IDs, birth
    date, telephone, accession) is always masked, even when it is on the catalog's safe list;
    otherwise a safe-listed creator is shown, and any other only when it is short plain ASCII
    with no Safe Harbor pattern and no run of five or more digits.
    """
    lowered = creator.strip().lower()
    if lowered in own or (words_of(creator) & scan.tokens):
        return False
    if any(phrase in lowered for phrase in scan.phrases):
        return False
    if creator in safe:
        return True
    return bool(
        _SAFE_CREATOR.match(creator)
        and not _LONG_DIGITS.search(creator)
        and not safe_harbor_counts(creator)
    )


def _graphics_findings(out: list[Finding], scan: _Scan, rules: DicomRules, asset: str) -> None:
    if scan.overlay:
        out.append(rules.overlay.finding(
            asset,
            f"{len(scan.overlay)} overlay element(s) remain ({_names(scan.overlay)}); overlays "
            "are drawn over the image and may show the patient's name, ID or dates.",
            locations=tuple(scan.overlay),
        ))
    if scan.curve_groups:
        locs = tuple(
            Location.of_evidence(DicomBlock(tag_path=tag_path(scan.curve_first[g]),
                                            keyword="CurveData", path=f"({g:04X},xxxx)",
                                            elements=n))
            for g, n in sorted(scan.curve_groups.items())
        )
        out.append(rules.curve.finding(
            asset, f"{len(locs)} retired curve group(s) remain.", locations=locs
        ))
    if scan.icon is not None:
        out.append(rules.icon.finding(
            asset,
            "An Icon Image Sequence remains: a thumbnail of the pixels, with any burned-in text.",
            locations=(Location.of_evidence(DicomBlock(
                tag_path=tag_path(scan.icon), keyword="IconImageSequence",
                path=readable_path(scan.icon))),),
        ))


def _burned_in_findings(
    out: list[Finding], header: ParsedHeader, top: dict[int, Element], rules: DicomRules,
    asset: str, options: frozenset[str],
) -> None:
    if not header.reached_pixel_data:
        return
    check = rules.burned_in
    el = top.get(BURNED_IN_ANNOTATION)
    value = burned_in_setting(el)
    if value == "YES":
        assert el is not None
        out.append(check.finding(
            asset, "BurnedInAnnotation is YES: the pixels show text that header "
                   "de-identification does not remove.",
            locations=(Location.of_evidence(DicomValue(
                tag_path=tag_path(el), keyword="BurnedInAnnotation", path=readable_path(el),
                evidence="YES")),),
        ))
        return
    if value == "NO" or "clean_pixel_data" in options:
        return
    modality = _ascii(_value(top.get(MODALITY)) or b"").upper()
    sop_class = _ascii(_value(top.get(SOP_CLASS_UID)) or b"")
    image_type = _ascii(_value(top.get(IMAGE_TYPE)) or b"").upper().split("\\")
    risky = rules.high_risk_modalities
    secondary = rules.secondary_capture_modalities
    reason = ""
    if sop_class.startswith(SECONDARY_CAPTURE_PREFIX):
        reason = "a secondary capture"
    elif modality in risky:
        reason = f"modality {modality}"
    elif modality in secondary and ("SECONDARY" in image_type or "SCREEN" in image_type):
        reason = f"a secondary {modality} image"
    if not reason:
        return
    out.append(check.finding(
        asset,
        f"BurnedInAnnotation is {value} on {reason}, a kind of image that often carries "
        "burned-in text; the pixels were not examined (use --ocr).",
        severity=check.severity.lowered(),
        locations=(Location.of_evidence(DicomSetting(
            tag_path=(f"{BURNED_IN_ANNOTATION:08X}",), keyword="BurnedInAnnotation",
            setting=value, evidence=_other_value_evidence(el, value, rules) or value)),),
    ))


def _other_value_evidence(el: Element | None, setting: str, rules: DicomRules) -> str | None:
    """Masked evidence of a BurnedInAnnotation that is neither YES nor NO (else ``None``)."""
    if el is None or not el.value or setting != "other value":
        return None
    return rules.masker.evidence(_ascii(el.value), el.vr)


def burned_in_setting(el: Element | None) -> str:
    """Say what BurnedInAnnotation holds without echoing it: YES, NO, absent, empty, other value.

    Its only valid values are YES and NO; anything else may be a value pasted in by mistake (a
    name), so it is never shown.
    """
    if el is None:
        return "absent"
    value = _ascii(el.value).strip().upper() if el.value else ""
    if not value:
        return "empty"
    return value if value in ("YES", "NO") else "other value"


def _declaration_findings(
    out: list[Finding], header: ParsedHeader, top: dict[int, Element], rules: DicomRules,
    asset: str, declared: bool, options: frozenset[str],
) -> None:
    removed = _ascii(_value(top.get(PATIENT_IDENTITY_REMOVED)) or b"").upper() == "YES"
    if not removed:
        return
    problems: list[Location] = []
    if DEIDENTIFICATION_METHOD not in top and DEIDENTIFICATION_CODES not in top:
        problems.append(Location.of_evidence(DicomSetting(
            tag_path=(f"{DEIDENTIFICATION_METHOD:08X}",), keyword="DeidentificationMethod",
            setting="absent, and DeidentificationMethodCodeSequence absent too")))
    burned_value = burned_in_setting(top.get(BURNED_IN_ANNOTATION))
    if (header.reached_pixel_data and burned_value != "NO"
            and "clean_pixel_data" not in options):
        problems.append(Location.of_evidence(DicomSetting(
            tag_path=(f"{BURNED_IN_ANNOTATION:08X}",), keyword="BurnedInAnnotation",
            setting=burned_value,
            evidence=_other_value_evidence(top.get(BURNED_IN_ANNOTATION), burned_value, rules))))
    if not problems:
        return
    out.append(rules.declaration.finding(
        asset,
        "PatientIdentityRemoved is YES but the declaration "
        + " and ".join(
            "names no method" if p.get("keyword") == "DeidentificationMethod"
            else f"leaves BurnedInAnnotation {p.get('setting')}" for p in problems
        ) + ".",
        locations=tuple(problems),
    ))
