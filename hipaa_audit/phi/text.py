"""PHI in exports that are not DICOM: CSV/TSV, HL7 v2, FHIR JSON/XML, and free text.

Structure first: the PID segment of HL7 v2, the Patient resources of FHIR, the identifier
columns of a CSV header. Safe Harbor patterns with context otherwise. Precision matters as much
as recall: a file is PHI only when it names a person together with another identifier, or holds
a strong identifier (SSN, medical record number); inventories, configs and aggregate statistics
are not. Results are kinds and counts, never values.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

from hipaa_audit.errors import HipaaAuditError
from hipaa_audit.phi.patterns import (
    MBI,
    dea_valid,
    is_dummy_date,
    looks_like_person_name,
    npi_valid,
    safe_harbor_counts,
)

#: Identifier kinds strong enough alone to make a file PHI (health-plan beneficiary numbers
#: among them: a Medicare MBI or HICN, a member or subscriber id).
STRONG = frozenset({"ssn", "mrn", "mbi", "hicn", "health-plan"})
#: Identifiers of clinicians, not patients (NPI, DEA number): reported when a file is PHI, but
#: never what makes it PHI, so that a roster of prescribers is not called a patient export.
PROVIDER = frozenset({"npi", "dea"})

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
    "mbi": "mbi", "medicarebeneficiaryidentifier": "mbi", "hicn": "hicn", "npi": "npi",
    "dea": "dea", "deanumber": "dea", "memberid": "health-plan", "subscriberid": "health-plan",
    "policynumber": "health-plan", "healthplanid": "health-plan",
}
#: Words (and run-together phrases) of a header not in :data:`CSV_HEADERS` that still say what
#: its cells are: ``Pt MRN#``, ``Patient SSN (last)``, ``Medicare ID``, ``Insurance Member #``.
HEADER_WORDS = {"mrn": "mrn", "chart": "mrn", "ssn": "ssn", "mbi": "mbi", "hicn": "hicn",
                "npi": "npi", "dea": "dea"}
HEADER_PHRASES = (("medicalrecord", "mrn"), ("socialsecurity", "ssn"),
                  ("medicarebeneficiary", "mbi"), ("medicareclaim", "hicn"),
                  ("medicareid", "mbi"), ("medicarenumber", "mbi"), ("member", "health-plan"),
                  ("subscriber", "health-plan"), ("policy", "health-plan"),
                  ("healthplan", "health-plan"), ("insurance", "health-plan"))
#: HL7 v2 PID fields (1-based) -> identifier kind.
PID_FIELDS = {3: "mrn", 5: "name", 7: "birth-date", 11: "address", 13: "phone", 14: "phone",
              19: "ssn"}
#: The FHIR identifier system of US social security numbers.
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
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


#: Most bytes of one export read to judge it. HL7 v2, FHIR JSON and NDJSON are read as a
#: stream up to here (a Bundle over 64 KiB is read whole); CSV and free text by their head.
MAX_TEXT_BYTES = 64 * 1024 * 1024
#: Longest JSON value parsed at once (a Bundle entry, an NDJSON line) and longest HL7 segment, in
#: characters: a longer one is skipped and counted, so memory stays bounded whatever the input.
MAX_ITEM_CHARS = 1024 * 1024
#: The scope of an export cut at :data:`MAX_TEXT_BYTES`.
TRUNCATED_SCOPE = f"first {MAX_TEXT_BYTES // (1024 * 1024)} MiB"
#: Bytes read from the stream at a time.
CHUNK_BYTES = 1024 * 1024
_NEWLINE = re.compile(r"\r\n|\r|\n")
_WS = re.compile(r"[ \t\r\n\ufeff]*")
_DECODER = json.JSONDecoder()
_BATCH_HEADERS = ("MSH|", "FHS|", "BHS|")
_HICN = re.compile(r"\d{3}-?\d{2}-?\d{4}-?[A-Za-z]\d?")
_DEA = re.compile(r"[A-Za-z][A-Za-z9]\d{7}")
_PLAN_ID = re.compile(r"[A-Za-z]{0,4}\d[A-Za-z0-9-]{4,24}")
_MBI_CELL = re.compile(MBI)
_WORDS = re.compile(r"[a-z]+")


@dataclass(frozen=True, slots=True)
class TextPhi:
    """What a text export holds: its format, identifier kinds with counts, records with PHI.

    ``scope`` says how much was read (``first 64 KiB``, ``whole file``, ``first 64 MiB``);
    ``unread`` counts the items (Bundle entries, NDJSON lines, segments) too long to parse or
    malformed, which were skipped.
    """

    format: str
    kinds: dict[str, int]
    records: int
    scope: str = "first 64 KiB"
    unread: int = 0

    @property
    def partial(self) -> bool:
        """True when items were skipped or the file was longer than :data:`MAX_TEXT_BYTES`."""
        return bool(self.unread) or self.scope == TRUNCATED_SCOPE


@dataclass(slots=True)
class _Source:
    """The decoded text of an export as a stream of chunks: its head, then the rest."""

    head: bytes
    more: IO[bytes] | None
    encoding: str
    read: int = 0
    truncated: bool = False

    def chunks(self) -> Iterator[str]:
        decoder = codecs.getincrementaldecoder(self.encoding)(errors="replace")
        self.read = len(self.head)
        yield decoder.decode(self.head)
        while self.more is not None:
            if self.read >= MAX_TEXT_BYTES:
                self.truncated = bool(self.more.read(1))
                break
            block = self.more.read(min(CHUNK_BYTES, MAX_TEXT_BYTES - self.read))
            if not block:
                break
            self.read += len(block)
            yield decoder.decode(block)
        yield decoder.decode(b"", final=True)

    @property
    def scope(self) -> str:
        if self.truncated:
            return TRUNCATED_SCOPE
        return "whole file" if self.more is not None else "first 64 KiB"


def analyse(head: bytes, more: IO[bytes] | None = None) -> TextPhi | None:
    """Return what a text export holds; ``None`` for binary data.

    ``head`` is the first bytes; ``more`` (optional) the rest of the file, read as a stream for
    the formats that are read whole (HL7 v2, FHIR JSON and NDJSON), at most
    :data:`MAX_TEXT_BYTES` in all. ``kinds`` is empty when the text holds no PHI by
    :func:`is_phi`.
    """
    decoded = _as_text(head)
    if decoded is None:
        return None
    text, encoding = decoded
    source = _Source(head, more, encoding)
    stripped = text.lstrip("\ufeff \r\n\t\x0b")
    unread = 0
    if stripped.startswith(_BATCH_HEADERS):
        fmt = "hl7v2"
        kinds, records, unread = _hl7(_lines(source))
    elif stripped.startswith(("{", "[")) and '"resourceType"' in stripped:
        if _is_ndjson(stripped):
            fmt = "fhir-ndjson"
            kinds, records, unread = _ndjson(_lines(source))
        else:
            fmt = "fhir-json"
            kinds, records, unread = _fhir_json(source, stripped)
    elif stripped.startswith("<") and _FHIR_XML.search(text.encode("utf-8", "replace")[:65536]):
        fmt, kinds, records = "fhir-xml", *_fhir_xml(stripped)
    elif (table := _csv(stripped)) is not None:
        fmt, kinds, records = "csv", *table
    else:
        fmt, kinds, records = "text", *_free_text(stripped)
    scope = source.scope if fmt in ("hl7v2", "fhir-json", "fhir-ndjson") else "first 64 KiB"
    if not is_phi(kinds):
        return TextPhi(fmt, {}, 0, scope, unread)
    return TextPhi(fmt, dict(sorted(kinds.items())), records, scope, unread)


def is_phi(kinds: Counter[str] | dict[str, int]) -> bool:
    """A strong identifier, a person's name with another identifier, or three other kinds.

    Clinicians' identifiers (:data:`PROVIDER`) never count.
    """
    present = {k for k, n in kinds.items() if n} - PROVIDER
    return bool(present & STRONG) or ("name" in present and len(present) >= 2) or (
        len(present - {"date"}) >= 3)


def _as_text(head: bytes) -> tuple[str, str] | None:
    """Decode the head: UTF-16 with a BOM (Excel "Unicode text"), UTF-8, else Latin-1."""
    if not head:
        return None
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
        text = head[: len(head) // 2 * 2].decode("utf-16", errors="replace")
    elif b"\x00" in head[:4096]:
        return None
    else:
        try:
            text, encoding = head.decode("utf-8"), "utf-8"
        except UnicodeDecodeError as exc:
            if exc.start >= len(head) - 4:  # a character cut at the end of the sample
                text, encoding = head[: exc.start].decode("utf-8"), "utf-8"
            else:
                text, encoding = head.decode("latin-1"), "latin-1"
    sample = text[:4096]
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\r\n\t\f\x0b\x1c")
    if controls > len(sample) // 100 or (encoding == "utf-16" and "\ufffd" in sample):
        return None  # control characters, or bytes that are no UTF-16 after all
    return text, encoding


def _lines(source: _Source) -> Iterator[str | None]:
    """Split a stream of text into lines (CR, LF or CRLF); ``None`` for a line too long.

    The last line of a file cut at :data:`MAX_TEXT_BYTES` is left out: it is cut short.
    """
    pending = ""
    skipping = False
    for chunk in source.chunks():
        parts = _NEWLINE.split(pending + chunk)
        pending = parts.pop()
        for part in parts:
            if skipping:
                skipping = False  # the end of a line too long to keep
                continue
            yield part
        if len(pending) > MAX_ITEM_CHARS:
            if not skipping:
                yield None
            skipping, pending = True, ""
    if pending and not skipping and not source.truncated:
        yield pending


def _by_line(lines: Iterator[str | None],
             count: Callable[[str, Counter[str]], int | None]) -> tuple[Counter[str], int, int]:
    """Count identifiers line by line: ``(kinds, records, unread lines)``.

    ``count`` adds the identifiers of one line to the kinds and returns the records it held,
    or ``None`` for a line it cannot read; a line too long to keep (``None``) is unread too.
    """
    kinds: Counter[str] = Counter()
    records = unread = 0
    for line in lines:
        held = None if line is None else count(line, kinds)
        if held is None:
            unread += 1
        else:
            records += held
    return kinds, records, unread


def _hl7(lines: Iterator[str | None]) -> tuple[Counter[str], int, int]:
    """Count the identifiers of every PID segment (single messages and FHS/BHS batches)."""
    return _by_line(lines, _pid_segment)


def _pid_segment(segment: str, kinds: Counter[str]) -> int:
    """The identifiers of a PID segment (1 record when it names any); other segments hold none."""
    segment = segment.lstrip("\x0b\x1c")  # MLLP framing, when a capture kept it
    if not segment.startswith("PID|"):
        return 0
    fields = segment.split("|")
    found = 0
    for index, kind in PID_FIELDS.items():
        if index < len(fields) and fields[index].strip("^~& "):
            kinds[kind] += 1
            found = 1
    return found


def _is_ndjson(text: str) -> bool:
    """True when the first line is a whole JSON object and the next one opens another."""
    first, _, rest = text.partition("\n")
    if not first.rstrip().endswith("}") or not rest.lstrip().startswith("{"):
        return False
    try:
        return isinstance(json.loads(first), dict)
    except (ValueError, RecursionError):
        return False


def _ndjson(lines: Iterator[str | None]) -> tuple[Counter[str], int, int]:
    """FHIR Bulk Data NDJSON: one resource per line, every line parsed on its own."""
    return _by_line(lines, _ndjson_line)


def _ndjson_line(line: str, kinds: Counter[str]) -> int | None:
    """The patients of one NDJSON line (none on a blank one); ``None`` when it is not JSON."""
    if not line.strip():
        return 0
    try:
        resource = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return sum(_patient(item, kinds) for item in _resources(resource))


def _patient(resource: dict[str, object], kinds: Counter[str]) -> bool:
    """Count a Patient resource's identifier elements; True when it has any."""
    if resource.get("resourceType") != "Patient":
        return False
    found = False
    for element, kind in FHIR_ELEMENTS.items():
        if resource.get(element):
            kinds[kind] += 1
            found = True
    if _has_ssn(resource.get("identifier")):
        kinds["ssn"] += 1
    return found


def _has_ssn(identifiers: object) -> bool:
    """True when a Patient's identifiers declare a social security number.

    The identifier's type (HL7 v2 table 0203 code ``SS``) or its system (``us-ssn``) says what it
    is, whatever its digits: exports from test systems (Synthea) use the never-issued 999 range.
    """
    if not isinstance(identifiers, list):
        return False
    for ident in identifiers[:64]:
        if not isinstance(ident, dict):
            continue
        if ident.get("system") == SSN_SYSTEM:
            return True
        kind = ident.get("type")
        codings = kind.get("coding") if isinstance(kind, dict) else None
        if isinstance(codings, list) and any(
                isinstance(c, dict) and c.get("code") == "SS" for c in codings[:16]):
            return True
    return False


class _TooLong(HipaaAuditError):
    """A JSON value longer than :data:`MAX_ITEM_CHARS`."""


class _JsonStream:
    """Just enough of a streaming JSON reader: one value at a time, each bounded in size."""

    def __init__(self, chunks: Iterator[str]) -> None:
        self.chunks = chunks
        self.buf = ""
        self.pos = 0
        self.eof = False

    def _more(self, want: int) -> bool:
        if self.pos > CHUNK_BYTES:
            self.buf, self.pos = self.buf[self.pos:], 0
        got = 0
        while got < want and not self.eof:
            chunk = next(self.chunks, None)
            if chunk is None:
                self.eof = True
                break
            self.buf += chunk
            got += len(chunk)
        return got > 0

    def peek(self) -> str:
        """Skip blanks; return the next character ("" at the end)."""
        while True:
            match = _WS.match(self.buf, self.pos)
            self.pos = match.end() if match else self.pos
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more(1):
                return ""

    def value(self) -> object:
        """Parse the next value; :class:`_TooLong` or ``ValueError`` when it cannot be."""
        self.peek()
        while True:
            try:
                obj, end = _DECODER.raw_decode(self.buf, self.pos)
            except RecursionError as exc:
                raise ValueError("nested too deep") from exc
            except ValueError:
                end = -1
            if end != -1 and (end < len(self.buf) or self.eof):
                self.pos = end
                return obj
            if self.eof and end == -1:
                raise ValueError("malformed JSON")
            if len(self.buf) - self.pos > MAX_ITEM_CHARS:
                raise _TooLong
            if not self._more(max(CHUNK_BYTES, len(self.buf) - self.pos)) and end != -1:
                self.pos = end
                return obj


def _fhir_json(source: _Source, head_text: str) -> tuple[Counter[str], int, int]:
    """A FHIR resource, a Bundle or an array of them, read whole as a stream.

    The top level is walked member by member; each Bundle entry (or array item) is parsed on
    its own, so a Bundle of any size costs memory for one entry at a time. An entry too long
    or malformed stops the walk (its end cannot be found safely): what was read is judged and
    the rest counted as unread. When the first value already fails (malformed, or nested past
    the parser), the head is judged as free text, as before JSON was streamed.
    """
    stream = _JsonStream(source.chunks())
    kinds: Counter[str] = Counter()
    records = unread = 0
    parsed = False
    try:
        first = stream.peek()
        if first == "[":
            stream.pos += 1
            for item in _items(stream, "]"):
                parsed = True
                for resource in _resources(item):
                    records += _patient(resource, kinds)
        else:
            stream.pos += 1
            top: dict[str, object] = {}
            while (ch := stream.peek()) not in ("}", ""):
                if ch == ",":
                    stream.pos += 1
                    continue
                key = stream.value()
                if stream.peek() != ":":
                    raise ValueError("expected a colon")
                stream.pos += 1
                if key == "entry" and stream.peek() == "[":
                    stream.pos += 1
                    for entry in _items(stream, "]"):
                        parsed = True
                        inner = entry.get("resource") if isinstance(entry, dict) else None
                        if isinstance(inner, dict):
                            records += _patient(inner, kinds)
                else:
                    value = stream.value()  # kept only when a Patient's judgement needs it
                    if key == "resourceType" or key in FHIR_ELEMENTS:
                        top[str(key)] = value
            if top.get("resourceType") != "Bundle":
                parsed = True
                records += _patient(top, kinds)
    except _TooLong:
        unread += 1
    except ValueError:  # malformed, or nested past the parser
        unread += parsed  # at the start: judged as text below, as a sample cut short would be
    if not parsed and not kinds:
        free, lines = _free_text(head_text)
        return free, lines, unread
    return kinds, records, unread


def _items(stream: _JsonStream, close: str) -> Iterator[object]:
    """Yield the values of an array whose ``[`` was just read."""
    while True:
        ch = stream.peek()
        if ch == close:
            stream.pos += 1
            return
        if ch == ",":
            stream.pos += 1
            continue
        if ch == "":
            raise ValueError("the array is cut short")
        yield stream.value()


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


def _column_kind(header: str) -> str | None:
    """The identifier kind a CSV header names: a known header, or a word or phrase of one."""
    lowered = header.lower()
    key = _NON_LETTERS.sub("", lowered)
    known = CSV_HEADERS.get(key)
    if known is not None:
        return known
    for word in _WORDS.findall(lowered):
        if word in HEADER_WORDS:
            return HEADER_WORDS[word]
    for phrase, kind in HEADER_PHRASES:
        if phrase in key:
            return kind
    return None


def _csv(text: str) -> tuple[Counter[str], int] | None:
    """A table: identifier columns by their header, every other cell by its pattern.

    A cell of a column whose header names no identifier still counts when it holds a Safe
    Harbor pattern (an SSN, an MRN with its label, an MBI...), so an export with unusual
    headers is not waved through. Bounded: the first 2000 lines of the head.
    """
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
    columns = {i: kind for i, h in enumerate(header) if (kind := _column_kind(h)) is not None}
    kinds: Counter[str] = Counter()
    records = 0
    for row in rows[1:]:
        found = False
        for i, cell in enumerate(row):
            value = cell.strip()
            kind = columns.get(i)
            if kind is not None:
                if _plausible(kind, value):
                    kinds[kind] += 1
                    found = True
            elif value and (pairs := safe_harbor_counts(value)):
                kinds.update(dict(pairs))
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
    if kind == "mbi":
        return bool(_MBI_CELL.fullmatch(value))
    if kind == "hicn":
        return bool(_HICN.fullmatch(value))
    if kind == "npi":
        return npi_valid(value)
    if kind == "dea":
        return bool(_DEA.fullmatch(value)) and dea_valid(value)
    if kind == "health-plan":
        return bool(_PLAN_ID.fullmatch(value))
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
