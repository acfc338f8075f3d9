"""Read audit logs into the normalised event table (:mod:`hipaa_audit.logs.schema`).

Five formats: DICOM audit messages (``atna``: PS3.15 A.5 / RFC 3881 XML, one per line,
concatenated, pretty-printed or inside RFC 5424/3164 syslog lines), FHIR R4 ``AuditEvent``
(``fhir``: one resource, a ``Bundle`` or NDJSON), AWS CloudTrail (``cloudtrail``:
``{"Records": [...]}``, a bare list or NDJSON), and CSV / JSON Lines (``csv``, ``jsonl``) read
through a :class:`ColumnMapping`. gzip files are read transparently (by their magic bytes).

:func:`parse_file` streams: it keeps one chunk of events as Python lists (JSON documents are
decoded one record at a time, XML one message at a time, CSV through ``read_csv(chunksize=)``)
and yields :class:`~hipaa_audit.logs.schema.Chunk` objects. Records that cannot be parsed are
counted as :class:`~hipaa_audit.logs.schema.Malformed` with their position and a short reason,
never their content. ``line`` is the 1-based line where a record starts for line-oriented input
(XML, NDJSON, CSV, JSONL) and the record's 1-based ordinal for elements of a JSON array
(``Records``, ``entry``, a bare list).

Patient ids, patient family names and study identifiers are replaced by keyed fingerprints
(:meth:`hipaa_audit.redaction.Masker.fingerprint`) as they are read; accession numbers, object
keys, queries and free text never reach the table.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import re
import warnings
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import numpy as np
import pandas as pd

from hipaa_audit.errors import HipaaAuditError
from hipaa_audit.logs.schema import (
    ACTIONS,
    DETAIL_ROOTS,
    OUTCOMES,
    SECRET_KEY,
    STRING_DTYPE,
    Chunk,
    Malformed,
    empty,
    normalise,
)
from hipaa_audit.mapping import check_columns, check_format, check_table, from_table, mapping_hash
from hipaa_audit.redaction import Masker

__all__ = [
    "FORMATS",
    "ColumnMapping",
    "LogFormatError",
    "detect_format",
    "may_identify",
    "parse_file",
]

#: The formats :func:`parse_file` reads.
FORMATS = ("atna", "fhir", "cloudtrail", "csv", "jsonl")
#: Bytes (decompressed) that :func:`detect_format` looks at.
HEAD_BYTES = 64 * 1024
#: A single record (XML message, JSON value, text line) larger than this is malformed.
MAX_RECORD_CHARS = 16 * 1024 * 1024
#: Fingerprints remembered per parse (patients and studies repeat); cleared when full.
FINGERPRINT_CACHE = 1_000_000
#: A count or byte size beyond this (2^62) is not a plausible value: the record is malformed.
MAX_NUMBER = 2**62
#: Nested DICOM extensions of a FHIR entity followed at most this deep.
MAX_EXTENSION_DEPTH = 16
#: CloudTrail detail (``errorMessage``, ``additionalEventData``, ``responseElements``): at most
#: this many leaves per record, this many levels deep; a longer value is fingerprinted.
MAX_DETAIL_LEAVES = 32
MAX_DETAIL_DEPTH = 6
MAX_DETAIL_TEXT = 256

_BLOCK = 1 << 20
#: Text lines are read in pieces of at most this many characters (memory stays bounded).
_LINE_PIECE = MAX_RECORD_CHARS
_UNREADABLE = "unreadable data (truncated or corrupt)"
_TOO_DEEP = "JSON nested too deep"
_OUT_OF_RANGE = "number out of range"
_READ_ERRORS = (EOFError, OSError, zlib.error)


class LogFormatError(HipaaAuditError):
    """A log file that cannot be read at all, or whose format cannot be told (names the file)."""


class _Bad(HipaaAuditError):
    """A record that cannot be turned into an event; ``args[0]`` is the short reason."""

    @property
    def reason(self) -> str:
        return str(self.args[0])


# ---------------------------------------------------------------------------------------------
# column mapping (CSV / JSONL)

_MAPPED = ("time", "user", "role", "action", "outcome", "patient", "patient_name", "study",
           "objects", "bytes", "source_ip", "device", "purpose", "event_id", "target", "code",
           "system")
_REQUIRED = ("time", "user", "action")
_OPTIONAL = frozenset(_MAPPED).difference(_REQUIRED) | {"time_format"}


@dataclass(frozen=True)
class ColumnMapping:
    """Where each field of the event table is in a CSV file (column) or JSONL record (key).

    ``None`` (or ``""``/``false`` in a config file) means the source has no such field. JSONL keys
    may be dotted paths into nested objects (``actor.id``). ``actions`` translates source action
    values (case-insensitive) to normalised actions; unmapped values already in
    :data:`~hipaa_audit.logs.schema.ACTIONS` pass, others become ``other``. ``outcomes``
    translates source outcome values to ``success``/``failure``; the defaults understand
    success/failure/ok/fail/0/denied/true/false and HTTP status codes. ``time_format`` is a
    ``strptime`` format; by default times are ISO 8601 or epoch seconds/milliseconds. Naive times
    are in ``timezone``.
    """

    time: str = "time"
    user: str = "user"
    role: str | None = "role"
    action: str = "action"
    outcome: str | None = "outcome"
    patient: str | None = "patient"
    patient_name: str | None = "patient_name"
    study: str | None = "study"
    objects: str | None = "objects"
    bytes: str | None = "bytes"
    source_ip: str | None = "source_ip"
    device: str | None = "device"
    purpose: str | None = "purpose"
    event_id: str | None = "event_id"
    target: str | None = "target"
    code: str | None = "code"
    system: str | None = "system"
    actions: dict[str, str] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)
    time_format: str | None = None
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        check_columns("column", self, _REQUIRED, [n for n in _MAPPED if n not in _REQUIRED])
        check_table("column", "actions", self.actions, ACTIONS)
        check_table("column", "outcomes", self.outcomes, OUTCOMES)
        check_format("column", "time_format", self.time_format)
        if not isinstance(self.timezone, str):
            raise ValueError("column mapping: timezone must be a time zone name")
        if self.timezone != "UTC":
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"column mapping: timezone: unknown time zone "
                                 f"{self.timezone!r}") from exc

    def __hash__(self) -> int:
        return mapping_hash(self)

    @classmethod
    def from_config(cls, data: dict[str, Any]) -> ColumnMapping:
        """Build a mapping from a config table; raises ``ValueError`` naming the bad key."""
        return from_table(cls, "column", data, tables=("actions", "outcomes"),
                          nullable=_OPTIONAL)

    def columns(self) -> dict[str, str]:
        """The mapped fields and their source column/key (fields without a source left out)."""
        out: dict[str, str] = {}
        for name in _MAPPED:
            value = getattr(self, name)
            if value:
                out[name] = value
        return out


# ---------------------------------------------------------------------------------------------
# shared helpers

class _Fingerprints:
    """Keyed fingerprints of identifiers, remembered for the parse (values repeat)."""

    def __init__(self, masker: Masker) -> None:
        self._fingerprint = masker.fingerprint
        self._cache: dict[str, str] = {}

    def __call__(self, value: str) -> str:
        cache = self._cache
        out = cache.get(value)
        if out is None:
            if len(cache) >= FINGERPRINT_CACHE:
                cache.clear()
            out = cache[value] = self._fingerprint(value)
        return out

    def patient(self, value: object) -> str | None:
        """Fingerprint of a patient id (HL7 CX ``^^^`` suffix stripped)."""
        pid = _patient_id(value)
        return self(pid) if pid else None

    def name(self, value: object) -> str | None:
        """Fingerprint of the upper-cased family name of a person name."""
        family = _family_name(value) if isinstance(value, str) else None
        return self(family) if family else None

    def study(self, value: object) -> str | None:
        """Fingerprint of a study id (Study Instance UID, ``urn:oid:`` prefix stripped)."""
        if not isinstance(value, str):
            return None
        text = value.strip()
        if text[:8].lower() == "urn:oid:":
            text = text[8:]
        return self(text) if text else None

    def actor(self, value: object) -> str | None:
        """A patient acting as the user (portal, self-service): ``patient:`` and a fingerprint."""
        pid = self.patient(value)
        return f"{PATIENT_ACTOR}{pid}" if pid else None

    def label(self, value: str | None, known: Sequence[str | None] = (),
              codes: bool = False) -> str | None:
        """``value`` (a device, target, system or code) as is, or fingerprinted if it may be PHI.

        See :func:`may_identify`; ``known`` are the record's own patient id and name,
        ``codes`` lets DICOM codes (``110106``) through.
        """
        if value is None or not may_identify(value, known, codes):
            return value
        return self.mask(value)

    def mask(self, value: str | None) -> str | None:
        """``value`` fingerprinted whatever it holds (e.g. a patient's own address)."""
        return None if value is None else f"{MASKED_LABEL}{self(value)}"


#: How a patient acting as the user is shown in the ``user`` column.
PATIENT_ACTOR = "patient:"
#: How a device, target, system or code that may hold an identifier is shown.
MASKED_LABEL = "hmac:"
#: Roles (FHIR agent role/type, ATNA RoleIDCode, a mapped role column) that say the actor is the
#: patient: HL7 v3 RoleClass PAT, and the word itself.
PATIENT_ROLES = frozenset({"pat", "patient"})
#: HL7 v2 table 0203 identifier types that are patient identifiers (medical record number,
#: patient internal / external id).
PATIENT_ID_TYPES = frozenset({"MR", "MRN", "PI", "PT"})
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_IDENTIFIER_LIKE = re.compile(r"\d{5,}|@")
_DICOM_CODE = re.compile(r"(?<![\d.])1\d{5}(?![\d.])")


def may_identify(value: str, known: Sequence[str | None] = (), codes: bool = False) -> bool:
    """Whether ``value``, free text read from a log, may hold a patient identifier.

    True when it holds a run of five or more digits (a medical record, account, accession or
    social security number, a birth date) or an ``@`` (an e-mail address), or contains one of
    ``known`` (the record's own patient id or family name, three characters or more, any case).
    A UUID is never PHI; with ``codes``, DICOM codes (six digits from 1) are let through.
    """
    if _UUID.fullmatch(value):
        return False
    text = _DICOM_CODE.sub("", value) if codes else value
    if _IDENTIFIER_LIKE.search(text):
        return True
    low = value.lower()
    return any(k is not None and len(k) >= 3 and k.lower() in low for k in known)


def _is_patient_role(codes: Sequence[str]) -> bool:
    return any(code.strip().lower() in PATIENT_ROLES for code in codes)


def _patient_id(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.strip()
    if "^" in text:
        text = text.split("^", 1)[0].strip()
    return text or None


_NAME_SUFFIXES = frozenset({"JR", "SR", "II", "III", "IV", "V", "MD", "PHD", "DDS", "RN", "ESQ"})


def _family_name(name: str) -> str | None:
    """The upper-cased family name of ``Family^Given``, ``Family, Given`` or ``Given Family``."""
    text = name.strip()
    if "=" in text:  # DICOM PN component groups: alphabetic first
        text = text.split("=", 1)[0]
    if "^" in text:
        family = text.split("^", 1)[0]
    elif "," in text:
        family = text.split(",", 1)[0]
    else:
        words = text.replace(".", " ").split()
        while len(words) > 1 and words[-1].upper() in _NAME_SUFFIXES:
            words.pop()
        family = words[-1] if words else ""
    family = " ".join(family.split()).upper()
    return family or None


def _str(value: object) -> str | None:
    """``value`` as a non-empty stripped string, else None (numbers are turned into text)."""
    if isinstance(value, str):
        text = value.strip()
        return text or None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    return None


def _int(value: object) -> int | None:
    """``value`` as an integer; None when it is not a number.

    Raises :class:`_Bad` for a number past ±:data:`MAX_NUMBER` or not finite: a count or size
    no log can hold (it would overflow the table's 64-bit column).
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        if abs(value) > MAX_NUMBER:
            raise _Bad(_OUT_OF_RANGE)
        return value
    try:
        number = float(value) if isinstance(value, float | str) else None
    except ValueError:
        return None
    if number is None:
        return None
    if number != number or abs(number) > MAX_NUMBER:
        raise _Bad(_OUT_OF_RANGE)
    return int(number)


def _pick_purpose(codes: list[str]) -> str | None:
    """The purpose of use to show: break-glass reasons first, else the first code."""
    for code in codes:
        if code.upper() in ("BTG", "ETREAT"):
            return code.upper()
    return codes[0] if codes else None


class _Row(NamedTuple):
    time: str
    user: str | None
    role: str | None
    action: str
    outcome: str | None
    patient: str | None
    patient_name: str | None
    study: str | None
    objects: int | None
    bytes: int | None
    source_ip: str | None
    device: str | None
    purpose: str | None
    event_id: str
    code: str | None
    target: str | None
    system: str | None
    line: int
    #: CloudTrail only: ``errorCode`` and ``userIdentity.type`` (for Sigma rules)
    error_code: str | None = None
    identity_type: str | None = None
    #: CloudTrail only: the screened detail (:func:`_cloudtrail_detail`)
    detail: str | None = None


_ROW_STRINGS = ("user", "role", "action", "outcome", "patient", "patient_name", "study",
                "source_ip", "device", "purpose", "event_id", "code", "target", "system",
                "error_code", "identity_type", "detail")


class _Collector:
    """Collects the events and malformed records of one stretch of a file into chunks."""

    def __init__(self, fmt: str, path: Path, chunk_rows: int) -> None:
        self.fmt = fmt
        self.source = str(path)
        self.chunk_rows = chunk_rows
        self.rows: list[_Row] = []
        self.malformed: list[Malformed] = []
        self.emitted = False

    def bad(self, line: int, reason: str) -> None:
        self.malformed.append(Malformed(self.source, line, reason))

    def add(self, row: _Row) -> Chunk | None:
        self.rows.append(row)
        return self.flush() if len(self.rows) >= self.chunk_rows else None

    def flush(self) -> Chunk:
        rows, self.rows = self.rows, []
        frame = _rows_frame(rows, self.fmt, self.source, self.malformed)
        return self.chunk(frame)

    def chunk(self, frame: pd.DataFrame) -> Chunk:
        malformed, self.malformed = self.malformed, []
        malformed.sort(key=lambda m: m.line)
        self.emitted = True
        return Chunk(frame, malformed)

    def finish(self) -> Iterator[Chunk]:
        """The last chunk (always one chunk per file, even when it is empty)."""
        if self.rows or self.malformed or not self.emitted:
            yield self.flush()


def _rows_frame(rows: list[_Row], fmt: str, source: str,
                malformed: list[Malformed]) -> pd.DataFrame:
    """The normalised frame of ``rows``; rows whose time does not parse become malformed."""
    if not rows:
        return empty()
    columns = dict(zip(_Row._fields, zip(*rows, strict=True), strict=True))
    times = _iso_times(pd.Series(columns["time"], dtype=object))
    lines = np.asarray(columns["line"], dtype=np.int64)
    data: dict[str, Any] = {"time": times}
    for name in _ROW_STRINGS:
        data[name] = pd.array(columns[name], dtype=STRING_DTYPE)
    for name in ("objects", "bytes", "line"):
        data[name] = pd.array(columns[name], dtype="Int64")
    n = len(rows)
    data["format"] = pd.array([fmt] * n, dtype=STRING_DTYPE)
    data["source"] = pd.array([source] * n, dtype=STRING_DTYPE)
    frame = pd.DataFrame(data)
    bad = frame["time"].isna().to_numpy()
    if bad.any():
        for line in lines[bad].tolist():
            malformed.append(Malformed(source, int(line), "bad timestamp"))
        frame = frame[~bad]
    return normalise(frame)


def _iso_times(values: pd.Series) -> pd.Series:
    """ISO 8601 texts as UTC times (naive ones taken as UTC); NaT where they do not parse."""
    out = pd.to_datetime(values, format="ISO8601", utc=True, errors="coerce")
    return out.astype("datetime64[ms, UTC]")


class _Lines:
    """Numbered pieces of lines (at most ``limit`` characters each) of a text handle.

    A piece that does not end with a newline continues on the next piece (same line number).
    Reading stops at unreadable data (a truncated or corrupt gzip stream): ``error`` says so.
    """

    def __init__(self, handle: TextIO, limit: int | None = None) -> None:
        self.handle = handle
        self.limit = limit or _LINE_PIECE
        self.error: str | None = None
        self.line = 1

    def __iter__(self) -> Iterator[tuple[int, str, bool]]:
        read = self.handle.readline
        limit = self.limit
        while True:
            try:
                piece = read(limit)
            except _READ_ERRORS:
                self.error = _UNREADABLE
                return
            if not piece:
                self.error = _read_error(self.handle)
                return
            # shorter than the limit without a newline: the last line of the file
            complete = piece.endswith("\n") or len(piece) < limit
            yield self.line, piece, complete
            if complete:
                self.line += 1


def _open_binary(path: Path) -> Any:
    raw = path.open("rb")
    try:
        magic = raw.read(2)
        raw.seek(0)
    except OSError:
        raw.close()
        raise
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    return raw


class _Guarded(io.RawIOBase):
    """A byte stream that ends (remembering why) where its source becomes unreadable.

    A truncated or corrupt gzip stream then yields everything before the damage, and the
    parsers report the damage as a malformed record instead of losing the last buffer.
    """

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self._inner = inner
        self.error: str | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.error is not None:
            return 0
        try:
            data = self._inner.read1(len(buffer))
        except _READ_ERRORS:
            self.error = _UNREADABLE
            return 0
        n = len(data)
        buffer[:n] = data
        return n

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()


def _open_text(path: Path) -> TextIO:
    """``path`` as text (UTF-8, BOM dropped, bad bytes replaced), decompressing gzip."""
    try:
        binary = _open_binary(path)
    except OSError as exc:
        raise LogFormatError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    stream = io.BufferedReader(_Guarded(binary), buffer_size=256 * 1024)
    return io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace")


def _read_error(handle: TextIO) -> str | None:
    """Why reading ``handle`` (from :func:`_open_text`) stopped early, if it did."""
    raw = getattr(getattr(handle, "buffer", None), "raw", None)
    error = getattr(raw, "error", None)
    return error if isinstance(error, str) else None


def _read_head(path: Path) -> tuple[str, bool]:
    """The first :data:`HEAD_BYTES` of ``path`` (decompressed) as text, and whether that is all."""
    try:
        with path.open("rb") as f:
            raw = f.read(HEAD_BYTES + 1)
            if raw[:2] == b"\x1f\x8b":
                raw += f.read(HEAD_BYTES)
    except OSError as exc:
        raise LogFormatError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            inflater = zlib.decompressobj(31)
            data = inflater.decompress(raw, HEAD_BYTES + 1)
        except zlib.error as exc:
            raise LogFormatError(f"{path}: corrupt gzip data") from exc
        whole = inflater.eof and len(data) <= HEAD_BYTES
    else:
        data = raw
        whole = len(data) <= HEAD_BYTES
    data = data[:HEAD_BYTES]
    if b"\x00" in data:
        raise LogFormatError(f"{path}: binary data, not a text log")
    return data.decode("utf-8", errors="replace").lstrip("\ufeff"), whole


# ---------------------------------------------------------------------------------------------
# the organisation's time zone, from the UTC offsets records carry

_OFFSET_TIME = re.compile(
    r"(?<![\d])(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::\d{2}(?:[.,]\d+)?)?([+-])(\d{2}):?(\d{2})"
    r"(?![\d])")
#: Zones tried first when several fit the offsets equally (then every other, by name).
PREFERRED_ZONES = (
    "America/New_York", "America/Chicago", "America/Denver", "America/Phoenix",
    "America/Los_Angeles", "America/Anchorage", "Pacific/Honolulu", "America/Puerto_Rico",
    "America/Halifax", "America/St_Johns", "Europe/London", "Europe/Dublin", "Europe/Lisbon",
    "Europe/Paris", "Europe/Berlin", "Europe/Helsinki", "Europe/Moscow", "Asia/Dubai",
    "Asia/Kolkata", "Asia/Singapore", "Asia/Shanghai", "Asia/Tokyo", "Australia/Brisbane",
    "Australia/Sydney", "Pacific/Auckland", "America/Sao_Paulo", "America/Mexico_City",
    "Africa/Johannesburg", "UTC")


def record_offsets(path: Path) -> list[tuple[int, int]]:
    """The local UTC offsets the first records of a log carry (ATNA and FHIR times do).

    Each time written with a numeric offset (``2024-05-01T02:13:07-04:00``) in the first
    :data:`HEAD_BYTES` gives (its UTC time in epoch seconds, its offset in minutes). A ``Z``
    (CloudTrail, or a system that writes UTC) says nothing of the local zone and is left out.
    Nothing else of the records is kept.
    """
    try:
        text, _ = _read_head(path)
    except LogFormatError:
        return []
    out = []
    for m in _OFFSET_TIME.finditer(text):
        year, month, day, hour, minute, sign, oh, om = m.groups()
        try:
            local = datetime(int(year), int(month), int(day), int(hour), int(minute))
        except ValueError:
            continue
        offset = (int(oh) * 60 + int(om)) * (1 if sign == "+" else -1)
        if abs(offset) > 14 * 60:
            continue
        utc = local - timedelta(minutes=offset)
        out.append((int((utc - datetime(1970, 1, 1)).total_seconds()), offset))
    return out


def zone_of_offsets(samples: Sequence[tuple[int, int]]) -> tuple[str, int] | None:
    """The IANA time zone that fits most (UTC time, offset) samples, and how many it fits.

    Every zone is tried (:data:`PREFERRED_ZONES` first, so that of zones fitting equally, e.g.
    America/New_York and America/Detroit, the common one is named); a zone fits a sample when
    its UTC offset at that moment is the sample's (so summer and winter time both count). None
    when there is no sample.
    """
    if not samples:
        return None
    # one weight per (hour, offset): a month of records is a few hundred distinct pairs
    weights: dict[tuple[int, int], int] = {}
    for when, offset in samples:
        key = (when // 3600 * 3600, offset)
        weights[key] = weights.get(key, 0) + 1
    others = sorted(z for z in available_timezones()
                    if "/" in z and not z.startswith(("Etc/", "SystemV/", "US/"))
                    and z not in PREFERRED_ZONES)
    best: tuple[str, int] | None = None
    for name in (*PREFERRED_ZONES, *others):
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
        fit = 0
        for (when, offset), n in weights.items():
            moment = datetime.fromtimestamp(when, tz=UTC).astimezone(zone)
            delta = moment.utcoffset()
            if delta is not None and int(delta.total_seconds()) // 60 == offset:
                fit += n
        if best is None or fit > best[1]:
            best = (name, fit)
    return best


# ---------------------------------------------------------------------------------------------
# format detection

_ATNA_START = re.compile(r"<AuditMessage(?=[\s>/])")
_ATNA_END = "</AuditMessage>"
_FHIR_RE = re.compile(r'"resourceType"\s*:\s*"(?:AuditEvent|Bundle)"')
#: A FHIR AuditEvent or Bundle in XML (the FHIR namespace on the element).
_FHIR_XML_RE = re.compile(r'<(?:AuditEvent|Bundle)\s[^>]*xmlns\s*=\s*["\']http://hl7\.org/fhir["\']')
_FHIR_XML_START = re.compile(r"<AuditEvent(?=[\s>/])")
_FHIR_XML_END = "</AuditEvent>"
_CT_CONTAINER = re.compile(r'\{\s*"Records"\s*:')
_NOT_HEADER_CELL = re.compile(r"^[\d\s.,:+\-/TZ]*$")


def detect_format(path: Path) -> str:
    """Tell the format of the log at ``path`` from its first bytes (gzip is looked inside).

    ``<AuditMessage`` (alone or in syslog lines) → ``atna``; a FHIR ``AuditEvent`` or ``Bundle``
    (JSON, NDJSON, or XML in the FHIR namespace) → ``fhir``; CloudTrail ``Records`` (or bare
    records) → ``cloudtrail``; a first line holding a JSON object → ``jsonl``; a delimited text
    with a header → ``csv``.
    Raises :class:`LogFormatError` (naming the file) when it cannot be read or told.
    """
    path = Path(path)
    text, whole = _read_head(path)
    stripped = text.lstrip()
    if not stripped:
        raise LogFormatError(f"{path}: empty file")
    if stripped[0] in "{[":
        if _FHIR_RE.search(text):
            return "fhir"
        if _CT_CONTAINER.match(stripped) or ('"Records"' in text and (
                '"eventSource"' in text or '"eventVersion"' in text)):
            return "cloudtrail"
        if '"eventVersion"' in text and '"eventSource"' in text and '"eventName"' in text:
            return "cloudtrail"
        if '"digestStartTime"' in text and '"logFiles"' in text:
            raise LogFormatError(f"{path}: a CloudTrail digest file, not a log")
        if stripped[0] == "{" and _first_line_is_object(stripped, whole):
            return "jsonl"
        raise LogFormatError(f"{path}: JSON, but not a recognised audit log "
                             "(FHIR AuditEvent, CloudTrail or JSON Lines)")
    if _ATNA_START.search(text):
        return "atna"
    if _FHIR_XML_RE.search(text):
        return "fhir"
    if _sniff_csv(text, whole) is not None:
        return "csv"
    raise LogFormatError(f"{path}: not a recognised audit log format "
                         f"({', '.join(FORMATS)})")


def _first_line_is_object(text: str, whole: bool) -> bool:
    line, newline, _ = text.partition("\n")
    try:
        return isinstance(json.loads(line), dict)
    except RecursionError:
        return True  # an object nested too deep: the parser reports the line
    except ValueError as exc:
        # a first line longer than the head: fine if it is only cut off
        cut = not newline and not whole
        return cut and isinstance(exc, json.JSONDecodeError) and exc.pos >= len(line) - 64


def _sniff_csv(text: str, whole: bool) -> tuple[int, str, list[str]] | None:
    """(header line number, delimiter, header cells) when ``text`` starts like a CSV file."""
    lines = text.splitlines()
    if not whole and len(lines) > 1:
        lines = lines[:-1]  # the last one may be cut off
    numbered = [(i, line) for i, line in enumerate(lines, 1) if line.strip()][:6]
    if not numbered:
        return None
    header_no, header = numbered[0]
    if header.lstrip().startswith("<"):
        return None
    best: tuple[int, str, list[str]] | None = None
    for delim in (",", "\t", ";", "|"):
        cells = next(csv.reader([header], delimiter=delim))
        if len(cells) >= 2 and (best is None or len(cells) > len(best[2])):
            best = (header_no, delim, cells)
    if best is None:
        return None
    cells = [c.strip() for c in best[2]]
    if any(not c or len(c) > 128 or _NOT_HEADER_CELL.match(c) for c in cells):
        return None
    for _, line in numbered[1:]:
        if len(next(csv.reader([line], delimiter=best[1]))) < 2:
            return None
    return best


# ---------------------------------------------------------------------------------------------
# parse_file

def parse_file(path: Path, fmt: str, masker: Masker, mapping: ColumnMapping | None = None,
               chunk_rows: int = 200_000) -> Iterator[Chunk]:
    """Stream the events of the log at ``path`` (format ``fmt``) as chunks of the event table.

    Each :class:`~hipaa_audit.logs.schema.Chunk` holds at most ``chunk_rows`` normalised events
    and the malformed records met in that stretch; a file always yields at least one chunk.
    ``mapping`` tells where the fields are for ``csv`` and ``jsonl`` (defaults:
    :class:`ColumnMapping`). Patient ids, names and study ids are fingerprinted with ``masker``.
    Raises :class:`LogFormatError` at once when the file cannot be read (or, for CSV, lacks a
    required column), ``ValueError`` for an unknown format.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r} (one of {', '.join(FORMATS)})")
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    path = Path(path)
    text, whole = _read_head(path)  # fails early on an unreadable file
    fp = _Fingerprints(masker)
    collector = _Collector(fmt, path, chunk_rows)
    if fmt == "atna":
        return _parse_atna(path, fp, collector)
    if fmt == "fhir":
        if text.lstrip().startswith("<"):
            return _parse_atna(path, fp, collector, _FHIR_XML_START, _FHIR_XML_END,
                               _fhir_xml_row, "AuditEvent")
        return _parse_json_records(path, "entry", _fhir_records(path, fp), collector)
    if fmt == "cloudtrail":
        return _parse_json_records(path, "Records", _cloudtrail_records(path, fp), collector)
    mapping = mapping or ColumnMapping()
    if fmt == "jsonl":
        return _parse_jsonl(path, mapping, fp, collector)
    return _parse_csv(path, text, whole, mapping, fp, collector)


# ---------------------------------------------------------------------------------------------
# DICOM / ATNA

_DTD = re.compile(r"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")
_SYSLOG_PRI = re.compile(r"^\s*(?:\d+\s+)?<\d{1,3}>")
_CRUDE = {"C": "create", "R": "view", "U": "update", "D": "delete", "E": "other"}
_SECURITY_TYPES = {
    "110127": "break-glass-start", "110138": "break-glass-stop",
    "110135": "permission-change", "110136": "permission-change",
    "110137": "permission-change",
    "110128": "config-change", "110129": "config-change", "110130": "config-change",
    "110131": "config-change",
    "110133": "audit-stop", "110134": "audit-start",
}


def _dicom_action(event_id: str, types: list[str], action_code: str,
                  media_export: bool) -> str:
    """The normalised action of a DICOM audit event (CID 400 event id, CID 401 type codes)."""
    if event_id == "110106":
        return "export"
    if event_id in ("110104", "110102"):
        if media_export:
            return "export"
        # 110102 only announces a transfer that 110104 reports: not counted twice
        return "download" if event_id == "110104" else "other"
    if event_id in ("110103", "110110", "110109", "110111"):
        return _CRUDE.get(action_code, "other")
    if event_id == "110105":
        return "delete"
    if event_id == "110112":
        return "query"
    if event_id == "110114":
        if "110122" in types:
            return "login"
        if "110123" in types:
            return "logout"
        return "other"
    if event_id == "110113":
        for code in types:
            if code in _SECURITY_TYPES:
                return _SECURITY_TYPES[code]
        return "security-alert"
    if event_id == "110100":
        if "110133" in types:
            return "audit-stop"
        if "110134" in types:
            return "audit-start"
        return "other"
    if event_id == "110101":
        return "log-access"
    if event_id == "110107":
        return "import"
    return "other"


def _xml_code(element: ET.Element) -> str | None:
    """The code of a coded value in either spelling (``csd-code`` or ``code``)."""
    value = element.get("csd-code") or element.get("code")
    return value.strip() if value else None


def _xml_text(element: ET.Element) -> str | None:
    """The text of a coded value in either spelling (``originalText`` or ``displayName``)."""
    value = element.get("originalText") or element.get("displayName")
    return value.strip() if value else None


def _strip_namespaces(root: ET.Element) -> None:
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.startswith("{"):
            element.tag = element.tag.split("}", 1)[1]


def _is_reporter(part: ET.Element, system: str | None) -> bool:
    """Whether an active participant is the system that wrote the audit record.

    Its user id, alternative user id or network access point equals the record's
    ``AuditSourceID`` (case aside).
    """
    if not system:
        return False
    me = system.strip().lower()
    return any((part.get(attr) or "").strip().lower() == me
               for attr in ("UserID", "AlternativeUserID", "NetworkAccessPointID"))


def _atna_row(root: ET.Element, fp: _Fingerprints, line: int, event_key: str) -> _Row:
    if root.tag.startswith("{"):
        _strip_namespaces(root)
    ident: ET.Element | None = None
    participants: list[ET.Element] = []
    objects: list[ET.Element] = []
    system: str | None = None
    for child in root:
        tag = child.tag
        if tag == "EventIdentification":
            ident = child
        elif tag == "ActiveParticipant":
            participants.append(child)
        elif tag == "ParticipantObjectIdentification":
            objects.append(child)
        elif tag == "AuditSourceIdentification" and system is None:
            system = _str(child.get("AuditSourceID"))
    if ident is None:
        raise _Bad("no EventIdentification")
    time = _str(ident.get("EventDateTime"))
    if time is None:
        raise _Bad("no EventDateTime")
    outcome_code = _str(ident.get("EventOutcomeIndicator"))
    outcome = None if outcome_code is None else ("success" if outcome_code == "0" else "failure")
    action_code = (ident.get("EventActionCode") or "").strip().upper()
    event_id: str | None = None
    types: list[str] = []
    purposes: list[str] = []
    for sub in ident:
        code = _xml_code(sub)
        if not code:
            continue
        if sub.tag == "EventID":
            event_id = code
        elif sub.tag == "EventTypeCode":
            types.append(code)
        elif sub.tag == "PurposeOfUse":
            purposes.append(code)
    if event_id is None:
        raise _Bad("no EventID")

    requestor: ET.Element | None = None
    first_user: ET.Element | None = None
    media_type: str | None = None
    destination: str | None = None
    local_destination = requestor_is_source = False
    for part in participants:
        uid = _str(part.get("UserID"))
        roles: list[str] = []
        media: ET.Element | None = None
        for sub in part:
            if sub.tag == "RoleIDCode":
                roles.append(_xml_code(sub) or "")
            elif sub.tag == "MediaIdentifier":
                media = sub
        if media is not None:
            if "110155" not in roles and media_type is None:  # not source media
                kind = next((_xml_code(m) for m in media if m.tag == "MediaType"), None)
                media_type = kind or "unknown"
        elif "110152" in roles:
            local_destination = local_destination or _is_reporter(part, system)
            if destination is None and uid:
                destination = uid
        if uid is None:
            continue
        if requestor is None and (part.get("UserIsRequestor") or "").strip().lower() in (
                "true", "1"):
            requestor = part
            requestor_is_source = "110153" in roles and not _is_reporter(part, system)
        is_destination = media is not None or "110152" in roles or "110154" in roles
        if first_user is None and not is_destination:
            first_user = part
    actor = requestor if requestor is not None else first_user
    user = role = source_ip = device = None
    actor_is_patient = False
    if actor is not None:
        actor_is_patient = _is_patient_role(
            [(_xml_code(sub) or "") for sub in actor if sub.tag == "RoleIDCode"]
            + [_xml_text(sub) or "" for sub in actor if sub.tag == "RoleIDCode"])
        user = _str(actor.get("UserID"))
        address = _str(actor.get("NetworkAccessPointID"))
        kind = (actor.get("NetworkAccessPointTypeCode") or "").strip()
        if kind == "2":
            source_ip = address
        elif kind == "1":
            device = address
        for sub in actor:
            # a coded job role (e.g. from XUA), not one of the DICOM transfer roles
            if sub.tag == "RoleIDCode" and (sub.get("codeSystemName") or "").upper() != "DCM":
                code = _xml_code(sub) or ""
                if not code.startswith("11015"):
                    role = _xml_text(sub) or code or None
                    break

    patient = patient_name = study = accession = None
    raw_patient: str | None = None
    raw_name: str | None = None
    instances: int | None = None
    for obj in objects:
        id_type: str | None = None
        name: str | None = _str(obj.get("ParticipantObjectName"))
        for sub in obj:
            tag = sub.tag
            if tag == "ParticipantObjectIDTypeCode":
                id_type = _xml_code(sub)
            elif tag == "ParticipantObjectName":
                name = _str(sub.text)
            elif tag in ("ParticipantObjectDescription", "SOPClass"):
                for desc in sub.iter():
                    if desc.tag == "SOPClass":
                        count = _int(desc.get("NumberOfInstances"))
                        if count is not None:
                            instances = (instances or 0) + count
                    elif desc.tag == "Accession" and accession is None:
                        accession = _str(desc.get("Number"))
        oid = obj.get("ParticipantObjectID")
        if (patient is None and obj.get("ParticipantObjectTypeCode") == "1"
                and obj.get("ParticipantObjectTypeCodeRole") == "1"):
            patient = fp.patient(oid)
            raw_patient = _patient_id(oid)
            if patient is not None and name:
                patient_name = fp.name(name)
                raw_name = _family_name(name)
        elif id_type == "110180" and study is None:
            study = fp.study(oid)
    if study is None and accession:
        study = fp.study(accession)

    action = _dicom_action(event_id, types, action_code, media_type is not None)
    if event_id in ("110104", "110102") and media_type is None and (
            local_destination or (requestor_is_source and action_code == "C")):
        # instances sent in (a modality's or a migration's C-STORE): the archive that wrote
        # the record is the destination, so nothing left it
        action = "import" if event_id == "110104" else "other"
    known = (raw_patient, raw_name)
    if actor_is_patient or (user is not None and _patient_id(user) == raw_patient):
        user, source_ip, device = fp.actor(user), fp.mask(source_ip), fp.mask(device)
    target = (f"media:{fp.label(media_type, known, codes=True)}" if media_type is not None
              else fp.label(destination, known))
    code = f"{event_id}/{types[0]}" if types else event_id
    return _Row(time, user, role, action, outcome, patient, patient_name, study, instances, None,
                source_ip, fp.label(device, known), _pick_purpose(purposes), event_key,
                fp.label(code, known, codes=True), target, fp.label(system, known), line)


def _parse_atna(path: Path, fp: _Fingerprints, col: _Collector,
                start_tag: re.Pattern[str] = _ATNA_START, end_tag: str = _ATNA_END,
                to_row: Callable[[ET.Element, _Fingerprints, int, str], _Row] = _atna_row,
                label: str = "AuditMessage") -> Iterator[Chunk]:
    """Stream the XML messages of a file (ATNA; FHIR AuditEvent in XML).

    Each runs from ``start_tag`` to ``end_tag`` (bare, in syslog lines, several on a line or
    one over many), is parsed with DTDs and entities refused and at most
    :data:`MAX_RECORD_CHARS` long, and is made a row by ``to_row``. Text outside the messages
    that is not markup is a malformed line (``no`` ``label``).
    """
    name = path.name
    too_large, truncated, missing = f"{label} too large", f"truncated {label}", f"no {label}"
    buffer: list[str] = []
    size = 0
    in_message = False
    start_line = 0
    dtd = False
    pending_header: int | None = None
    last_start = 0
    on_line = 0
    carry = ""
    line_start = True
    oversize = False  # inside a message too large to hold: skipped to its end

    def emit(text: str) -> Chunk | None:
        nonlocal dtd, last_start, on_line
        had_dtd, dtd = dtd, False
        if last_start == start_line:
            on_line += 1
        else:
            last_start, on_line = start_line, 1
        if had_dtd or ("<!" in text and _DTD.search(text)):
            col.bad(start_line, "DTD not allowed")
            return None
        try:
            root = ET.fromstring(text)
        except ET.ParseError:
            col.bad(start_line, "not XML")
            return None
        key = f"{name}:{start_line}" if on_line == 1 else f"{name}:{start_line}:{on_line}"
        try:
            row = to_row(root, fp, start_line, key)
        except _Bad as exc:
            col.bad(start_line, exc.reason)
            return None
        return col.add(row)

    with _open_text(path) as handle:
        lines = _Lines(handle)
        for lineno, raw_piece, complete in lines:
            piece = carry + raw_piece if carry else raw_piece
            carry = ""
            if not complete:  # keep a tag cut in two for the next piece
                lt = piece.rfind("<")
                if lt >= 0 and piece.find(">", lt) < 0 and len(piece) - lt < 256:
                    carry, piece = piece[lt:], piece[:lt]
            whole_line = line_start and complete
            line_start = complete
            touched = in_message
            pos = 0
            while True:
                if in_message:
                    end = piece.find(end_tag, pos)
                    restart = start_tag.search(piece, pos)
                    if restart is not None and (end < 0 or restart.start() < end):
                        col.bad(start_line, too_large if oversize
                                else truncated)
                        in_message, oversize, buffer, size = False, False, [], 0
                        pos = restart.start()
                        continue
                    if end < 0:
                        if not oversize:
                            buffer.append(piece[pos:])
                            size += len(piece) - pos
                            if size > MAX_RECORD_CHARS:
                                oversize, buffer, size = True, [], 0
                        break
                    stop = end + len(end_tag)
                    if oversize:
                        col.bad(start_line, too_large)
                        in_message, oversize = False, False
                        pos = stop
                        continue
                    buffer.append(piece[pos:stop])
                    text = "".join(buffer)
                    in_message, buffer, size = False, [], 0
                    chunk = emit(text)
                    if chunk is not None:
                        yield chunk
                    pos = stop
                    continue
                match = start_tag.search(piece, pos)
                outside = piece[pos:] if match is None else piece[pos:match.start()]
                if "<!" in outside and _DTD.search(outside):
                    dtd = True
                if match is None:
                    if not touched and whole_line:
                        if _SYSLOG_PRI.match(outside):
                            # a syslog header whose XML may follow on the next lines
                            if pending_header is not None:
                                col.bad(pending_header, missing)
                            pending_header = lineno
                        elif _TAG.sub("", outside).strip() and not dtd:
                            col.bad(lineno, missing)
                    break
                if pending_header is not None and _SYSLOG_PRI.match(outside):
                    # this message has its own syslog header: the pending one stood alone
                    col.bad(pending_header, missing)
                pending_header = None
                touched = in_message = True
                start_line = lineno
                buffer, size = [match.group()], 0
                pos = match.end()
        if lines.error is not None:
            col.bad(lines.line, lines.error)
        if in_message:
            col.bad(start_line, too_large if oversize
                    else truncated)
        if pending_header is not None:
            col.bad(pending_header, missing)
    yield from col.finish()


# ---------------------------------------------------------------------------------------------
# JSON documents (FHIR, CloudTrail): one record at a time

_JSON_WS = re.compile(r"[ \t\r\n\ufeff]*")
_FIRST_KEY = re.compile(r'\{\s*"([^"\\]{1,64})"\s*:')
#: The first key of a record in each container, before one has been read whole.
_RECORD_KEYS = {"Records": ("eventVersion",), "entry": ("fullUrl", "resource")}
#: Distinct first keys remembered to find the next record after a damaged one.
_MAX_RECORD_KEYS = 8
_NEXT_DOC = re.compile(r"\n(?=[\[{])")


class _JsonStream:
    """Decodes JSON values one at a time from a text handle, keeping only a window of it."""

    def __init__(self, handle: TextIO) -> None:
        self._handle = handle
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._decode = json.JSONDecoder().raw_decode
        self.line = 1
        self.error: str | None = None
        self._mark: tuple[int, int] | None = None  # (position, line) to come back to

    def mark(self) -> None:
        """Remember this place (the start of a record) to resynchronise from after an error."""
        self._mark = (self._pos, self.line)

    def unmark(self) -> None:
        """Forget the remembered place (the window may move past it again)."""
        self._mark = None

    def _fill(self) -> bool:
        if self._eof:
            return False
        try:
            data = self._handle.read(_BLOCK)
        except _READ_ERRORS:
            self._eof = True
            self.error = _UNREADABLE
            return False
        if not data:
            self._eof = True
            self.error = _read_error(self._handle)
            return False
        keep = self._pos
        if self._mark is not None:
            if len(self._buf) - self._mark[0] > MAX_RECORD_CHARS:
                self._mark = None
            else:
                keep = self._mark[0]
                self._mark = (0, self._mark[1])
        self._buf = self._buf[keep:] + data
        self._pos -= keep
        return True

    def _move(self, to: int) -> None:
        self.line += self._buf.count("\n", self._pos, to)
        self._pos = to

    def peek(self) -> str | None:
        """Skip white space; return the next character (None at the end)."""
        while True:
            match = _JSON_WS.match(self._buf, self._pos)
            if match is not None and match.end() > self._pos:
                self._move(match.end())
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._fill():
                return None

    def take(self) -> None:
        """Step over one punctuation character."""
        self._pos += 1

    def try_value(self) -> tuple[bool, Any]:
        """Decode the next value if it lies whole in the window: (True, value), else (False, _)."""
        try:
            obj, end = self._decode(self._buf, self._pos)
        except (json.JSONDecodeError, RecursionError):
            return False, None  # read again value by value (and reported there)
        if end >= len(self._buf) and not self._eof and not isinstance(obj, dict | list | str):
            return False, None
        self._move(end)
        return True, obj

    def value(self) -> Any:
        """Decode the next JSON value."""
        if self.peek() is None:
            raise _Bad("truncated JSON")
        while True:
            try:
                obj, end = self._decode(self._buf, self._pos)
            except RecursionError:
                raise _Bad(_TOO_DEEP) from None
            except json.JSONDecodeError as exc:
                cut = exc.pos >= len(self._buf) - 8 or exc.msg.startswith("Unterminated")
                if cut and len(self._buf) - self._pos <= MAX_RECORD_CHARS and self._fill():
                    continue
                if cut and len(self._buf) - self._pos > MAX_RECORD_CHARS:
                    raise _Bad("record too large") from exc
                raise _Bad("truncated JSON" if cut and self._eof else "bad JSON") from exc
            if (end >= len(self._buf) and not self._eof
                    and not isinstance(obj, dict | list | str) and self._fill()):
                continue  # a number may go on in the next block
            self._move(end)
            return obj

    def first_key(self) -> str | None:
        """The first key of the object that starts here, if one does (else None)."""
        found = _FIRST_KEY.match(self._buf, self._pos)
        return found.group(1) if found else None

    def skip_to(self, pattern: re.Pattern[str], *, past_here: bool) -> bool:
        """Move to the next match of ``pattern`` (after this place with ``past_here``).

        Only a bounded window is held while searching. Returns False at the end of the input.
        """
        self._mark = None
        start = self._pos + (1 if past_here else 0)
        while True:
            found = pattern.search(self._buf, min(start, len(self._buf)))
            if found is not None:
                self._move(found.start())
                return True
            self._move(max(self._pos, min(start, len(self._buf)), len(self._buf) - 256))
            if not self._fill():
                self._move(len(self._buf))
                return False
            start = self._pos  # the window starts here after the fill

    def resync(self) -> None:
        """Skip to the next line that starts a JSON value after the marked place."""
        if self._mark is not None:
            self._pos, self.line = self._mark
            self._mark = None
        while True:
            match = _NEXT_DOC.search(self._buf, self._pos)
            if match is not None:
                self._move(match.end())
                return
            self._move(len(self._buf))
            if not self._fill():
                return


class _JsonRecord(NamedTuple):
    number: int
    value: Any


def _json_values(stream: _JsonStream, container: str,
                 col: _Collector) -> Iterator[_JsonRecord]:
    """The records of a JSON file, numbered.

    Elements of ``container`` arrays or of bare lists are numbered by ordinal, other top-level
    values (NDJSON, single documents) by the line where they start. A damaged element of an
    array is counted (its ordinal) and reading resumes at the next record (see
    :func:`_json_array`); a damaged top-level value resumes at the next line that starts one.
    """
    ordinal = 0
    keys: dict[str, None] = dict.fromkeys(_RECORD_KEYS.get(container, ()))
    while True:
        char = stream.peek()
        if char is None:
            return
        start = stream.line
        stream.mark()
        try:
            if char == "[":
                stream.take()
                stream.unmark()
                ordinal = yield from _json_array(stream, col, ordinal, keys)
                continue
            if char == "{":
                done, obj = stream.try_value()  # the usual case: small enough to hold
                if done:
                    if isinstance(obj, dict) and isinstance(obj.get(container), list):
                        for value in obj[container]:
                            ordinal += 1
                            yield _JsonRecord(ordinal, value)
                    else:
                        yield _JsonRecord(start, obj)
                    continue
                # larger than the window (or bad): key by key, streaming the container
                stream.take()
                collected: dict[str, Any] = {}
                seen = False
                first = True
                while True:
                    char = stream.peek()
                    if char == "}":
                        stream.take()
                        break
                    if char is None and seen:
                        break  # cut after the records: a lost one was counted in the array
                    if not first:
                        if char != ",":
                            raise _Bad("bad JSON" if char is not None else "truncated JSON")
                        stream.take()
                    first = False
                    key = stream.value()
                    if not isinstance(key, str) or stream.peek() != ":":
                        raise _Bad("bad JSON")
                    stream.take()
                    if key == container and stream.peek() == "[":
                        stream.take()
                        stream.unmark()  # may be huge: damage inside is skipped record-wise
                        seen = True
                        ordinal = yield from _json_array(stream, col, ordinal, keys)
                    else:
                        collected[key] = stream.value()
                if not seen:
                    yield _JsonRecord(start, collected)
                continue
            yield _JsonRecord(start, stream.value())
        except _Bad as exc:
            col.bad(start, exc.reason)
            stream.resync()


def _record_start(keys: dict[str, None]) -> re.Pattern[str]:
    """Where an object whose first key is one of ``keys`` starts."""
    names = "|".join(re.escape(k) for k in keys) or r'[^"\\]{1,64}'
    return re.compile(r'\{\s*"(?:' + names + r')"\s*:')


def _json_array(stream: _JsonStream, col: _Collector, ordinal: int,
                keys: dict[str, None]) -> Generator[_JsonRecord, None, int]:
    """The elements of an array whose ``[`` has been taken, numbered after ``ordinal``.

    An element that cannot be decoded is reported under its ordinal, and reading resumes at the
    next object starting with a key records of this array start with (``keys``, learnt from the
    records read); each element lost that way is counted, so none is lost silently. Returns the
    last ordinal used.
    """
    if stream.peek() == "]":
        stream.take()
        return ordinal
    while True:
        head = stream.first_key()
        try:
            value = stream.value()
        except _Bad as exc:
            ordinal += 1
            col.bad(ordinal, exc.reason)
            if head is not None and len(keys) < _MAX_RECORD_KEYS:
                keys[head] = None
            if not stream.skip_to(_record_start(keys), past_here=True):
                return ordinal
            continue
        ordinal += 1
        if isinstance(value, dict) and value and len(keys) < _MAX_RECORD_KEYS:
            keys.setdefault(next(iter(value)), None)
        yield _JsonRecord(ordinal, value)
        char = stream.peek()
        if char == ",":
            stream.take()
        elif char == "]":
            stream.take()
            return ordinal
        elif char is None:
            col.bad(ordinal + 1, "truncated JSON")
            return ordinal
        else:  # damage between two elements: counted, then on to the next record
            ordinal += 1
            col.bad(ordinal, "bad JSON between records")
            if not stream.skip_to(_record_start(keys), past_here=False):
                return ordinal


def _parse_json_records(path: Path, container: str,
                        to_rows: Callable[[int, Any, _Collector], Iterator[_Row]],
                        col: _Collector) -> Iterator[Chunk]:
    with _open_text(path) as handle:
        stream = _JsonStream(handle)
        for record in _json_values(stream, container, col):
            for row in to_rows(record.number, record.value, col):
                chunk = col.add(row)
                if chunk is not None:
                    yield chunk
        if stream.error is not None:
            col.bad(stream.line, stream.error)
    yield from col.finish()


# ---------------------------------------------------------------------------------------------
# FHIR AuditEvent

_REST = {
    "read": "view", "vread": "view",
    "search": "query", "search-type": "query", "search-system": "query",
    "search-compartment": "query", "history": "query", "history-instance": "query",
    "history-type": "query", "history-system": "query",
    "create": "create", "update": "update", "patch": "update", "delete": "delete",
}
_PATIENT_REF = re.compile(r"(?:^|/)Patient/([^/?#]+)")


def _codes(value: object) -> list[str]:
    """The codes of a Coding, a CodeableConcept, or a list of either."""
    out: list[str] = []
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, dict):
            continue
        code = item.get("code")
        if isinstance(code, str) and code.strip():
            out.append(code.strip())
        codings = item.get("coding")
        if isinstance(codings, list):
            for coding in codings:
                if isinstance(coding, dict):
                    sub = coding.get("code")
                    if isinstance(sub, str) and sub.strip():
                        out.append(sub.strip())
    return out


def _concept_text(value: object) -> str | None:
    """A readable label of a CodeableConcept (or the first of a list): text, display or code."""
    if isinstance(value, list):
        value = value[0] if value else None
    if not isinstance(value, dict):
        return None
    text = _str(value.get("text"))
    if text:
        return text
    codings = value.get("coding")
    if isinstance(codings, list):
        for coding in codings:
            if isinstance(coding, dict):
                label = _str(coding.get("display")) or _str(coding.get("code"))
                if label:
                    return label
    return _str(value.get("display")) or _str(value.get("code"))


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _reference_label(value: object) -> str | None:
    ref = _dict(value)
    return (_str(ref.get("display")) or _str(ref.get("reference"))
            or _str(_dict(ref.get("identifier")).get("value")))


def _instances(extensions: object, depth: int = 0) -> int | None:
    """Σ ``NumberOfInstances`` in the (nested) DICOM extensions of an entity.

    Raises :class:`_Bad` past :data:`MAX_EXTENSION_DEPTH` levels or for a count out of range.
    """
    total: int | None = None
    if not isinstance(extensions, list):
        return None
    if depth > MAX_EXTENSION_DEPTH:
        raise _Bad("extensions nested too deep")
    for ext in extensions:
        if not isinstance(ext, dict):
            continue
        url = ext.get("url")
        if isinstance(url, str) and "numberofinstances" in url.lower():
            for key in ("valueInteger", "valueUnsignedInt", "valuePositiveInt", "valueString",
                        "valueDecimal"):
                count = _int(ext.get(key))
                if count is not None:
                    total = (total or 0) + count
                    break
        nested = _instances(ext.get("extension"), depth + 1)
        if nested is not None:
            total = (total or 0) + nested
    return total


def _fhir_row(res: dict[str, Any], fp: _Fingerprints, line: int, fallback_id: str) -> _Row:
    if res.get("resourceType") != "AuditEvent":
        raise _Bad("not an AuditEvent")
    time = _str(res.get("recorded"))
    if time is None:
        raise _Bad("no recorded")
    raw_outcome = res.get("outcome")
    if isinstance(raw_outcome, dict):  # R5: {code: Coding}
        raw_outcome = _dict(raw_outcome.get("code")).get("code")
    outcome_code = _str(raw_outcome)
    outcome = None if outcome_code is None else ("success" if outcome_code == "0" else "failure")
    type_codes = _codes(res.get("type")) or _codes(res.get("category"))
    subtypes = _codes(res.get("subtype")) or _codes(res.get("code"))
    action_code = (_str(res.get("action")) or "").upper()

    agents = [a for a in res.get("agent") or [] if isinstance(a, dict)]
    actor = next((a for a in agents if a.get("requestor") in (True, "true")), None)
    if actor is None and agents:
        actor = agents[0]
    user = role = source_ip = device = actor_id = None
    actor_is_patient = False
    purposes = _codes(res.get("purposeOfEvent")) + _codes(res.get("authorization"))
    if actor is not None:
        who = _dict(actor.get("who"))
        if not who:  # STU3: the agent's userId (Identifier) and reference (Reference)
            who = {**_dict(actor.get("reference")), "identifier": _dict(actor.get("userId"))}
        reference = _str(who.get("reference"))
        ident = _dict(who.get("identifier"))
        identifier = _str(ident.get("value"))
        found = _PATIENT_REF.search(reference or "")
        # a patient acting (portal): by reference, type, role (PAT) or an MRN-typed identifier
        actor_is_patient = (found is not None or who.get("type") == "Patient"
                            or _is_patient_role(_codes(actor.get("role"))
                                                + _codes(actor.get("type")))
                            or any(c.upper() in PATIENT_ID_TYPES
                                   for c in _codes(ident.get("type"))))
        actor_id = found.group(1) if found else identifier or reference
        user = identifier or reference or _str(actor.get("name")) or _str(who.get("display"))
        role = _concept_text(actor.get("role"))
        network = _dict(actor.get("network"))
        address = _str(network.get("address")) or _str(actor.get("networkString"))
        kind = _str(network.get("type"))
        if kind in ("1", "5"):  # machine name, URI
            device = address
        elif kind in (None, "2"):  # IP address (or unsaid); not phone numbers or e-mail
            source_ip = address
        purposes += _codes(actor.get("purposeOfUse"))
    source = _dict(res.get("source"))
    # STU3: the source's identifier (Identifier) stands for R4's observer
    observer = _reference_label(source.get("observer")) or _str(
        _dict(source.get("identifier")).get("value"))
    site = _str(source.get("site")) or _reference_label(source.get("site"))
    device = device or observer
    system = observer or site  # the observer is the system that wrote it (AuditSourceID)

    patient = patient_name = study = None
    raw_patient: str | None = None
    raw_name: str | None = None
    instances: int | None = None
    for entity in res.get("entity") or []:
        if not isinstance(entity, dict):
            continue
        what = _dict(entity.get("what"))
        if not what:  # STU3: the entity's reference (Reference) and identifier (Identifier)
            what = {**_dict(entity.get("reference")),
                    "identifier": _dict(entity.get("identifier"))}
        reference = _str(what.get("reference"))
        ident = _dict(what.get("identifier"))
        value = _str(ident.get("value"))
        found = _PATIENT_REF.search(reference) if reference else None
        if patient is None and ("1" in _codes(entity.get("role")) or found is not None):
            raw_patient = _patient_id(found.group(1) if found else value or reference)
            patient = fp.patient(raw_patient)
            name = _str(entity.get("name")) or _str(what.get("display"))
            if patient is not None and name:
                patient_name = fp.name(name)
                raw_name = _family_name(name)
        elif study is None and (
                "110180" in _codes(ident.get("type")) or "110180" in _codes(entity.get("type"))
                or ident.get("system") == "urn:dicom:uid"
                or (reference is not None and reference.startswith("ImagingStudy/"))):
            study = fp.study(value or (reference.split("/", 1)[1] if reference else None))
        count = _instances(entity.get("extension"))
        if count is not None:
            instances = (instances or 0) + count
    if patient is None:  # R5 AuditEvent.patient
        found = _PATIENT_REF.search(_str(_dict(res.get("patient")).get("reference")) or "")
        if found:
            raw_patient = _patient_id(found.group(1))
            patient = fp.patient(raw_patient)
    known = (raw_patient, raw_name)
    if actor_is_patient or (raw_patient is not None and raw_patient in (
            _patient_id(actor_id), _patient_id(user))):
        # never their raw id, name or address
        user = fp.actor((actor_id or user) if actor_is_patient else raw_patient)
        source_ip, device = fp.mask(source_ip), fp.mask(device) if device != observer else device

    type_code = type_codes[0] if type_codes else None
    if type_code is not None and type_code.startswith("1101"):
        action = _dicom_action(type_code, subtypes, action_code, False)
    else:
        action = next((_REST[s] for s in subtypes if s in _REST), "") or _CRUDE.get(
            action_code, "other")
    code = f"{type_code}/{subtypes[0]}" if type_code and subtypes else (type_code or (
        subtypes[0] if subtypes else None))
    event_key = _str(res.get("id"))
    if event_key is None or may_identify(event_key, known):
        event_key = fallback_id
    return _Row(time, user, role, action, outcome, patient, patient_name, study, instances, None,
                source_ip, fp.label(device, known), _pick_purpose(purposes), event_key,
                fp.label(code, known, codes=True), None, fp.label(system, known), line)


#: FHIR elements that are lists in JSON wherever they appear (AuditEvent R4, STU3 and R5, their
#: data types, Bundle); ``type`` is one only under ``source``.
_FHIR_XML_LISTS = frozenset({
    "subtype", "purposeOfEvent", "agent", "entity", "role", "policy", "purposeOfUse", "detail",
    "securityLabel", "coding", "extension", "modifierExtension", "category", "authorization",
    "entry", "link"})
#: A FHIR XML resource nested deeper than this is malformed.
MAX_FHIR_XML_DEPTH = 32


def _fhir_xml_value(element: ET.Element, depth: int) -> Any:
    """A FHIR XML element as its JSON form.

    A primitive's ``value``, else an object whose repeating elements (:data:`_FHIR_XML_LISTS`)
    are lists. Narrative (``text``/``div``) and contained resources are left out.
    """
    if depth > MAX_FHIR_XML_DEPTH:
        raise _Bad("AuditEvent nested too deep")
    value = element.get("value")
    if value is not None:
        return value
    out: dict[str, Any] = {}
    url = element.get("url")
    if url is not None:
        out["url"] = url
    for child in element:
        tag = child.tag
        if not isinstance(tag, str) or tag in ("div", "contained") or (
                tag == "text" and depth == 0):
            continue
        inner = _fhir_xml_value(child, depth + 1)
        if tag in _FHIR_XML_LISTS or (tag == "type" and element.tag == "source"):
            out.setdefault(tag, []).append(inner)
        else:
            out.setdefault(tag, inner)
    return out


def _fhir_xml_row(root: ET.Element, fp: _Fingerprints, line: int, fallback_id: str) -> _Row:
    """A FHIR AuditEvent in XML (R4, STU3): read as its JSON form by :func:`_fhir_row`."""
    _strip_namespaces(root)
    resource = _fhir_xml_value(root, 0)
    resource["resourceType"] = root.tag
    return _fhir_row(resource, fp, line, fallback_id)


def _fhir_records(path: Path, fp: _Fingerprints) -> Callable[[int, Any, _Collector],
                                                             Iterator[_Row]]:
    name = path.name

    def to_rows(number: int, value: Any, col: _Collector) -> Iterator[_Row]:
        if not isinstance(value, dict):
            col.bad(number, "not a JSON object")
            return
        resource = value
        if "resourceType" not in value and isinstance(value.get("resource"), dict):
            resource = value["resource"]  # a Bundle entry
        if resource.get("resourceType") == "Bundle":  # held whole: one nested or small
            entries = resource.get("entry") or []
            for k, entry in enumerate(entries if isinstance(entries, list) else [], 1):
                inner = _dict(_dict(entry).get("resource"))
                if inner.get("resourceType") == "Bundle":
                    col.bad(number, "nested Bundle")
                    continue
                try:
                    yield _fhir_row(inner, fp, number, f"{name}:{number}:{k}")
                except _Bad as exc:
                    col.bad(number, exc.reason)
            return
        try:
            yield _fhir_row(resource, fp, number, f"{name}:{number}")
        except _Bad as exc:
            col.bad(number, exc.reason)

    return to_rows


# ---------------------------------------------------------------------------------------------
# AWS CloudTrail

_CT_ACTIONS = {
    "ConsoleLogin": "login",
    "GetObject": "download", "SelectObjectContent": "download",
    "PutObject": "create", "CompleteMultipartUpload": "create", "PostObject": "create",
    "CopyObject": "export",
    "DeleteObject": "delete", "DeleteObjects": "delete", "DeleteBucket": "delete",
    "DeleteObjectVersion": "delete",
    "PutBucketAcl": "permission-change", "PutObjectAcl": "permission-change",
    "PutPublicAccessBlock": "permission-change", "DeletePublicAccessBlock": "permission-change",
    "PutBucketPublicAccessBlock": "permission-change",
    "DeleteBucketPublicAccessBlock": "permission-change",
    "PutAccountPublicAccessBlock": "permission-change",
    "DeleteAccountPublicAccessBlock": "permission-change",
    "PutBucketOwnershipControls": "permission-change",
    "CreateAccessKey": "permission-change", "UpdateAccessKey": "permission-change",
    "AddUserToGroup": "permission-change", "RemoveUserFromGroup": "permission-change",
    "CreateUser": "permission-change", "DeleteUser": "permission-change",
    "CreateRole": "permission-change", "DeleteRole": "permission-change",
    "UpdateAssumeRolePolicy": "permission-change", "CreatePolicy": "permission-change",
    "CreatePolicyVersion": "permission-change", "SetDefaultPolicyVersion": "permission-change",
    "CreateLoginProfile": "permission-change", "UpdateLoginProfile": "permission-change",
    "PutBucketEncryption": "config-change", "DeleteBucketEncryption": "config-change",
    "PutBucketVersioning": "config-change", "PutBucketLogging": "config-change",
    "PutBucketReplication": "config-change", "DeleteBucketReplication": "config-change",
    "PutObjectLockConfiguration": "config-change", "PutBucketWebsite": "config-change",
    "UpdateTrail": "config-change", "PutEventSelectors": "config-change",
    "PutInsightSelectors": "config-change", "CreateTrail": "config-change",
    "StopLogging": "audit-stop", "DeleteTrail": "audit-stop",
    "StartLogging": "audit-start",
}
_CT_TARGET_KEYS = ("bucketName", "policyName", "roleName", "groupName", "userName",
                   "trailName", "policyArn")


def _cloudtrail_action(event: str) -> str:
    action = _CT_ACTIONS.get(event)
    if action is not None:
        return action
    if event.startswith(("PutBucketLifecycle", "DeleteBucketLifecycle")):
        return "config-change"
    if event.startswith(("Attach", "Detach")) or (
            event.startswith(("Put", "Delete")) and event.endswith("Policy")):
        return "permission-change"
    if event.startswith(("Describe", "Get", "List", "Head", "Lookup")):
        return "query"
    return "other"


#: The path of the roles IAM Identity Center makes for its permission sets: people sign in to
#: them, and the session name is the person's sign-in name.
_SSO_ROLE_PATH = "/aws-reserved/sso.amazonaws.com/"


def cloudtrail_principal(ident: dict[str, Any]) -> tuple[str | None, str | None]:
    """The user and role of a CloudTrail ``userIdentity``.

    An ``AssumedRole``'s user is the role itself, the ARN of the session issuer
    (``arn:aws:iam::ACCOUNT:role/NAME``): the session name (a CI job id, an instance id, a
    caller-chosen label) is a detail of one session, so each CI job or instance launch is not a
    new user. The one exception is a role of IAM Identity Center (``AWSReservedSSO_``, under
    ``/aws-reserved/sso.amazonaws.com/``): people share the permission set's role and the session
    name is the person, so the user is the person's session ARN. Other identities are their
    ``userName``, else their ARN, principal id or invoking service.
    """
    arn = _str(ident.get("arn"))
    user = _str(ident.get("userName"))
    role = None
    if ident.get("type") == "AssumedRole" or (arn and ":assumed-role/" in arn):
        issuer = _dict(_dict(ident.get("sessionContext")).get("sessionIssuer"))
        issuer_arn = _str(issuer.get("arn"))
        role = _str(issuer.get("userName"))
        parts = arn.split("/") if arn and ":assumed-role/" in arn else []
        if role is None and len(parts) > 2:
            role = parts[-2]
        if issuer_arn is None and len(parts) > 2:
            account = arn.split(":")[4] if arn and arn.count(":") >= 5 else ""
            issuer_arn = f"arn:aws:iam::{account}:role/{parts[-2]}"
        people = (issuer_arn is not None and _SSO_ROLE_PATH in issuer_arn) or (
            role or "").startswith("AWSReservedSSO_")
        if people and arn:
            return arn, role
        if issuer_arn is not None:
            return issuer_arn, role
    if user is None:
        user = arn or _str(ident.get("principalId")) or _str(ident.get("invokedBy"))
    return user, role


def _cloudtrail_row(rec: dict[str, Any], fp: _Fingerprints, line: int, fallback_id: str) -> _Row:
    time = _str(rec.get("eventTime"))
    if time is None:
        if "digestStartTime" in rec:
            raise _Bad("CloudTrail digest, not a log record")
        raise _Bad("no eventTime")
    event = _str(rec.get("eventName"))
    if event is None:
        raise _Bad("no eventName")
    ident = _dict(rec.get("userIdentity"))
    user, role = cloudtrail_principal(ident)
    response = _dict(rec.get("responseElements"))
    failed = bool(rec.get("errorCode")) or response.get("ConsoleLogin") == "Failure"
    params = _dict(rec.get("requestParameters"))
    extra = _dict(rec.get("additionalEventData"))
    action = _cloudtrail_action(event)

    target = None
    for key in _CT_TARGET_KEYS:
        target = _str(params.get(key))
        if target:
            if key == "policyArn":
                target = target.rsplit("/", 1)[-1]
            break
    if target is None and rec.get("eventSource") == "cloudtrail.amazonaws.com":
        target = _str(params.get("name"))
        if target and target.startswith("arn:"):
            target = target.rsplit("/", 1)[-1]

    bytes_out = _int(extra.get("bytesTransferredOut"))
    bytes_in = _int(extra.get("bytesTransferredIn"))
    if event.startswith("Get") or action == "download":
        size = bytes_out
    elif event.startswith(("Put", "Upload", "Post")):
        size = bytes_in
    else:
        size = bytes_out or bytes_in or None

    bucket = _str(params.get("bucketName"))
    object_key = params.get("key")
    objects: int | None = None
    study = None
    if event == "DeleteObjects":
        listed = _dict(params.get("delete")).get("Object")
        if isinstance(listed, list):
            objects = len(listed)
        elif isinstance(listed, dict):
            objects = 1
        else:
            resources = rec.get("resources")
            count = sum(1 for r in resources if isinstance(r, dict)
                        and r.get("type") == "AWS::S3::Object") if isinstance(
                resources, list) else 0
            objects = count or None
    elif isinstance(object_key, str) and object_key:
        objects = 1
    if bucket and isinstance(object_key, str) and object_key:
        folders = [p for p in object_key.split("/") if p][:-1]
        if folders:
            study = fp("/".join(folders[:2]))
    event_key = _str(rec.get("eventID"))
    if event_key is None or may_identify(event_key):
        event_key = fallback_id
    # the event name, source and target are AWS API and resource names (buckets, policies,
    # roles), named by administrators: kept; the user agent is free text a client sends
    return _Row(time, user, role, action, "failure" if failed else "success", None, None, study,
                objects, size, _str(rec.get("sourceIPAddress")),
                fp.label(_str(rec.get("userAgent"))), None, event_key, event, target,
                _str(rec.get("eventSource")), line, fp.label(_str(rec.get("errorCode"))),
                fp.label(_str(ident.get("type"))), _cloudtrail_detail(rec, fp))


def _cloudtrail_detail(rec: dict[str, Any], fp: _Fingerprints) -> str | None:
    """A record's ``errorMessage``, ``additionalEventData`` and ``responseElements``, screened.

    JSON text of their scalar leaves by dotted path (``responseElements.ConsoleLogin``), for
    Sigma rules. These are free text a service or a caller writes: a value that may hold an
    identifier (:func:`may_identify`) or longer than :data:`MAX_DETAIL_TEXT` becomes
    ``hmac:`` and its fingerprint; a key that may, or that names a secret (``credentials``,
    ``secretAccessKey``, ``sessionToken``... :data:`SECRET_KEY`), is dropped with what it holds;
    lists are not followed; at most :data:`MAX_DETAIL_LEAVES` leaves, :data:`MAX_DETAIL_DEPTH`
    levels deep.
    """
    out: dict[str, str] = {}

    def walk(path: str, value: object, depth: int) -> None:
        if len(out) >= MAX_DETAIL_LEAVES:
            return
        if isinstance(value, dict):
            if depth >= MAX_DETAIL_DEPTH:
                return
            for key, inner in value.items():
                if (not isinstance(key, str) or not key or "." in key or SECRET_KEY.search(key)
                        or may_identify(key) or len(key) > MAX_DETAIL_TEXT):
                    continue
                walk(f"{path}.{key}", inner, depth + 1)
            return
        if isinstance(value, bool):
            text: str | None = "true" if value else "false"
        else:
            text = _str(value)
        if text is None:
            return
        if len(text) > MAX_DETAIL_TEXT or may_identify(text):
            text = fp.mask(text)
        out[path] = str(text)

    for root in DETAIL_ROOTS:
        value = rec.get(root)
        if (root == "errorMessage") != isinstance(value, dict):
            walk(root, value, 0)
    return json.dumps(out, sort_keys=True, separators=(",", ":")) if out else None


def _cloudtrail_records(path: Path, fp: _Fingerprints) -> Callable[[int, Any, _Collector],
                                                                   Iterator[_Row]]:
    name = path.name

    def to_rows(number: int, value: Any, col: _Collector) -> Iterator[_Row]:
        if not isinstance(value, dict):
            col.bad(number, "not a JSON object")
            return
        records = value.get("Records")
        if isinstance(records, list):  # a container held whole (rare: "Records" far ahead)
            for k, rec in enumerate(records, 1):
                if not isinstance(rec, dict):
                    col.bad(number, "not a JSON object")
                    continue
                try:
                    yield _cloudtrail_row(rec, fp, number, f"{name}:{number}:{k}")
                except _Bad as exc:
                    col.bad(number, exc.reason)
            return
        try:
            yield _cloudtrail_row(value, fp, number, f"{name}:{number}")
        except _Bad as exc:
            col.bad(number, exc.reason)

    return to_rows


# ---------------------------------------------------------------------------------------------
# CSV and JSON Lines through a ColumnMapping

_SUCCESS_WORDS = ("success", "succeeded", "successful", "ok", "pass", "passed", "allow",
                  "allowed", "permit", "permitted", "granted", "true", "yes", "y", "0")
_FAILURE_WORDS = ("failure", "failed", "fail", "error", "err", "denied", "deny", "rejected",
                  "reject", "blocked", "forbidden", "unauthorized", "unauthorised", "false",
                  "no", "n", "4", "8", "12")
_DEFAULT_OUTCOMES = {**dict.fromkeys(_SUCCESS_WORDS, "success"),
                     **dict.fromkeys(_FAILURE_WORDS, "failure")}
_NUMERIC = r"[+-]?\d+(?:\.\d+)?"
_AWARE = r"(?:[zZ]|[T ]\d{2}:\d{2}[^+-]*[+-]\d{2}(?::?\d{2})?)"


def _outcome_function(mapping: ColumnMapping) -> Callable[[str], str | None]:
    table = dict(_DEFAULT_OUTCOMES)
    table.update({k.strip().lower(): v.strip().lower() for k, v in mapping.outcomes.items()})

    def outcome(value: str) -> str | None:
        low = value.strip().lower()
        out = table.get(low)
        if out is None and len(low) == 3 and low.isdigit():  # an HTTP status
            out = "success" if low[0] in "123" else "failure" if low[0] in "45" else None
        return out

    return outcome


def _action_function(mapping: ColumnMapping) -> Callable[[str], str]:
    table = {k.strip().lower(): v.strip().lower() for k, v in mapping.actions.items()}
    known = frozenset(ACTIONS)

    def action(value: str) -> str:
        low = value.strip().lower()
        out = table.get(low)
        if out is not None:
            return out
        return low if low in known else "other"

    return action


def _map_unique(values: pd.Series, function: Callable[[str], str | None]) -> pd.Series:
    """``function`` applied once per distinct value (NA stays NA), as a string column."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    mapped = np.array([function(str(u)) for u in uniques] + [None], dtype=object)
    return pd.Series(pd.array(mapped[codes], dtype=STRING_DTYPE), index=values.index)


def _clean(values: pd.Series) -> pd.Series:
    """Stripped strings, with empty ones as NA."""
    text = values.astype(STRING_DTYPE).str.strip()
    return text.mask(text == "")


def _localise(times: pd.Series, timezone: str) -> pd.Series:
    if times.dt.tz is None:
        if timezone != "UTC":
            times = times.dt.tz_localize(timezone, ambiguous=np.ones(len(times), dtype=bool),
                                         nonexistent="shift_forward")
        else:
            times = times.dt.tz_localize("UTC")
    out: pd.Series = times.dt.tz_convert("UTC").astype("datetime64[ms, UTC]")
    return out


def _mapped_times(raw: pd.Series, time_format: str | None, timezone: str) -> pd.Series:
    """Parse a time column: ``time_format``, else ISO 8601 or epoch s/ms/µs/ns; NaT if bad."""
    if time_format:
        has_zone = "%z" in time_format or "%Z" in time_format
        parsed = pd.to_datetime(raw, format=time_format, errors="coerce", utc=has_zone)
        return _localise(parsed, timezone)
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ms, UTC]")
    numeric = raw.str.fullmatch(_NUMERIC).fillna(False).astype(bool)
    if numeric.any():
        number = pd.to_numeric(raw[numeric], errors="coerce").astype("float64")
        size = number.abs()
        millis = number.where(size < 1e17, number / 1e6)
        millis = millis.where((size < 1e14) | (size >= 1e17), number / 1e3)
        millis = millis.where((size < 1e11) | (size >= 1e14), number)
        millis = millis.where(size >= 1e11, number * 1e3)
        out[numeric] = pd.to_datetime(millis.round(), unit="ms", utc=True,
                                      errors="coerce").astype("datetime64[ms, UTC]")
    rest = ~numeric & raw.notna()
    if rest.any():
        text = raw[rest]
        if timezone == "UTC":
            out[rest] = _iso_times(text)
        else:
            aware = text.str.contains(_AWARE + "$", regex=True).fillna(False).astype(bool)
            if aware.any():
                out[aware[aware].index] = _iso_times(text[aware])
            naive = text[~aware]
            if len(naive):
                parsed = pd.to_datetime(naive, format="ISO8601", errors="coerce")
                if parsed.dt.tz is not None:
                    parsed = parsed.dt.tz_convert("UTC")
                out[naive.index] = _localise(parsed, timezone)
    return out


def _mapped_frame(raw: dict[str, pd.Series], lines: np.ndarray[Any, Any],
                  mapping: ColumnMapping, fp: _Fingerprints, col: _Collector,
                  name: str, action_fn: Callable[[str], str],
                  outcome_fn: Callable[[str], str | None]) -> pd.DataFrame:
    """The normalised events of one chunk of CSV/JSONL values (one column per mapped field)."""
    n = len(lines)
    index = pd.RangeIndex(n)
    columns = {k: _clean(pd.Series(v.to_numpy(), index=index)) for k, v in raw.items()}
    if not columns or n == 0:
        return empty()
    blank = np.logical_and.reduce([s.isna().to_numpy() for s in columns.values()])
    time_raw = columns["time"]
    times = _mapped_times(time_raw, mapping.time_format, mapping.timezone)
    bad = times.isna().to_numpy() & ~blank
    if bad.any():
        missing = time_raw.isna().to_numpy()
        for line, none in zip(lines[bad].tolist(), missing[bad].tolist(), strict=True):
            col.bad(int(line), "no timestamp" if none else "bad timestamp")

    def number(key: str) -> pd.Series:
        got = columns.get(key)
        if got is None:
            return pd.Series(pd.NA, index=index, dtype="Float64")
        return pd.to_numeric(got, errors="coerce").astype("Float64")

    counts = {key: number(key) for key in ("objects", "bytes")}
    huge = np.logical_or.reduce([(v.abs() > MAX_NUMBER).fillna(False).to_numpy(dtype=bool)
                                 for v in counts.values()]) & ~(blank | bad)
    for line in lines[huge].tolist():
        col.bad(int(line), _OUT_OF_RANGE)
    keep = ~(blank | bad | huge)
    objects, size = (v.mask(v.abs() > MAX_NUMBER).round().astype("Int64")
                     for v in counts.values())

    def text(key: str) -> pd.Series:
        got = columns.get(key)
        return got if got is not None else pd.Series(pd.NA, index=index, dtype=STRING_DTYPE)

    action_raw = text("action")
    line_text = pd.Series(lines, index=index).astype(str)
    event_id = text("event_id")
    risky = (event_id.str.contains(_IDENTIFIER_LIKE.pattern, regex=True)
             & ~event_id.str.fullmatch(_UUID.pattern)).fillna(False)
    event_id = event_id.mask(risky.to_numpy(dtype=bool))  # as may_identify, column-wise
    event_id = event_id.fillna((name + ":" + line_text).astype(STRING_DTYPE))
    user, role, source_ip, device = text("user"), text("role"), text("source_ip"), text("device")
    # a patient acting as the user (by role, or the user is the record's patient): fingerprinted,
    # with their address and device
    same = _map_unique(user, _patient_id) == _map_unique(text("patient"), _patient_id)
    acting = (role.str.strip().str.lower().isin(PATIENT_ROLES).fillna(False)
              | same.fillna(False)).to_numpy(dtype=bool)
    if acting.any():
        user = user.copy()
        user[acting] = _map_unique(user[acting], fp.actor)
        source_ip = source_ip.mask(acting, _map_unique(source_ip, fp.mask))
        device = device.mask(acting, _map_unique(device, fp.mask))
    frame = pd.DataFrame({
        "time": times,
        "user": user,
        "role": role,
        "action": _map_unique(action_raw, action_fn).fillna("other"),
        "outcome": _map_unique(text("outcome"), outcome_fn),
        "patient": _map_unique(text("patient"), fp.patient),
        "patient_name": _map_unique(text("patient_name"), fp.name),
        "study": _map_unique(text("study"), fp.study),
        "objects": objects,
        "bytes": size,
        "source_ip": source_ip,
        "device": _map_unique(device, fp.label),
        "purpose": text("purpose"),
        "event_id": event_id,
        "code": _map_unique(text("code").fillna(action_raw),
                            lambda v: fp.label(v, codes=True)),
        "target": _map_unique(text("target"), fp.label),
        "system": _map_unique(text("system"), fp.label),
        "format": pd.Series(col.fmt, index=index, dtype=STRING_DTYPE),
        "source": pd.Series(col.source, index=index, dtype=STRING_DTYPE),
        "line": pd.Series(lines, index=index, dtype="Int64"),
    })
    return normalise(frame[keep])


def _lookup(record: dict[str, Any], key: str) -> Any:
    if key in record:
        return record[key]
    if "." not in key:
        return None
    value: Any = record
    for part in key.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _scalar(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    return json.dumps(value, sort_keys=True)


def _parse_jsonl(path: Path, mapping: ColumnMapping, fp: _Fingerprints,
                 col: _Collector) -> Iterator[Chunk]:
    keys = mapping.columns()
    action_fn = _action_function(mapping)
    outcome_fn = _outcome_function(mapping)
    values: dict[str, list[str | None]] = {k: [] for k in keys}
    lines: list[int] = []

    def flush() -> Chunk:
        raw = {k: pd.Series(v, dtype=object) for k, v in values.items()}
        frame = _mapped_frame(raw, np.asarray(lines, dtype=np.int64), mapping, fp, col,
                              path.name, action_fn, outcome_fn)
        for v in values.values():
            v.clear()
        lines.clear()
        return col.chunk(frame)

    getters = [(values[k].append, key) for k, key in keys.items()]
    with _open_text(path) as handle:
        reader = _Lines(handle)
        long_line = 0
        for lineno, piece, complete in reader:
            if not complete:
                if long_line != lineno:
                    col.bad(lineno, "line too long")
                    long_line = lineno
                continue
            if long_line == lineno:
                continue
            stripped = piece.strip()
            if not stripped:
                continue
            try:
                record = json.loads(stripped)
            except ValueError:
                col.bad(lineno, "bad JSON")
                continue
            except RecursionError:
                col.bad(lineno, _TOO_DEEP)
                continue
            if not isinstance(record, dict):
                col.bad(lineno, "not a JSON object")
                continue
            try:
                cells = [_scalar(_lookup(record, key)) for _, key in getters]
            except RecursionError:  # a mapped value nested too deep to write back as text
                col.bad(lineno, _TOO_DEEP)
                continue
            for (append, _), cell in zip(getters, cells, strict=True):
                append(cell)
            lines.append(lineno)
            if len(lines) >= col.chunk_rows:
                yield flush()
        if reader.error is not None:
            col.bad(reader.line, reader.error)
    if lines or col.malformed or not col.emitted:
        yield flush()


_SKIPPED = re.compile(r"Skipping line (\d+)")
#: A quoted CSV field spanning more lines than this is taken for a quote left open.
MAX_FIELD_LINES = 10
_OPEN_QUOTE = "unbalanced quote (a field swallows the lines after it)"
_OPEN_QUOTE_AT_END = "unbalanced quote (open to the end of the file)"


def _row_lines(frame: pd.DataFrame) -> np.ndarray[Any, np.dtype[np.int64]]:
    """How many physical lines each row of ``frame`` spans (line breaks in quoted fields)."""
    spans = np.ones(len(frame), dtype=np.int64)
    for i in range(frame.shape[1]):
        column = frame.iloc[:, i]
        has = column.str.contains("\n", regex=False).fillna(False).to_numpy(dtype=bool)
        if has.any():
            spans[has] += column[has].str.count("\n").to_numpy(dtype=np.int64)
    return spans


def _swallowing(frame: pd.DataFrame, spans: np.ndarray[Any, Any],
                delim: str) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Rows whose quoted field looks like a quote left open (see :func:`_read_csv_chunks`)."""
    out = spans > MAX_FIELD_LINES
    needed = max(1, frame.shape[1] - 1)
    for pos in np.flatnonzero((spans > 1) & ~out).tolist():
        for value in frame.iloc[pos].tolist():
            if isinstance(value, str) and "\n" in value and any(
                    inner.count(delim) >= needed for inner in value.split("\n")[1:]):
                out[pos] = True
                break
    return out


def _header_cells(path: Path, header_line: int, delim: str) -> list[str]:
    """The cells of the header line (line ``header_line``) of the CSV file at ``path``."""
    with _open_text(path) as handle:
        for lineno, piece, _ in _Lines(handle):
            if lineno == header_line:
                return next(csv.reader([piece], delimiter=delim), [])
    return []


def _reread_lines(path: Path, first: int, last: int | None, delim: str, width: int,
                  col: _Collector) -> Iterator[tuple[int, list[str]]]:
    """Rows of the physical lines ``first``..``last`` (None: to the end), quotes checked.

    Used where the fast reader lost a stretch to a quote left open. A row whose quote is still
    open after :data:`MAX_FIELD_LINES` lines (or at the end) is malformed, and reading resumes
    at the line after its first: only the line with the stray quote is lost. Rows with another
    number of fields than ``width`` are malformed too. Yields each row's line and cells.
    """
    rows: list[tuple[int, list[str]]] = []  # closed since the last yield
    pending: list[tuple[int, str]] = []  # the lines of a record whose quote is open

    def close(lines: list[tuple[int, str]]) -> None:
        cells = next(csv.reader(["".join(text for _, text in lines)], delimiter=delim,
                                strict=False), [])
        if not cells or cells == [""]:
            return
        if len(cells) != width:
            col.bad(lines[0][0], "wrong number of fields")
            return
        rows.append((lines[0][0], cells))

    def settle(queue: list[tuple[int, str]]) -> list[tuple[int, str]]:
        """Close the complete records at the front of ``queue``; what remains is open."""
        while queue:
            quotes = 0
            for k, (_, text) in enumerate(queue):
                quotes += text.count('"')
                if quotes % 2 == 0:
                    if k and any(t.count(delim) >= width - 1 for _, t in queue[1:k + 1]):
                        # the lines inside the quote are rows of their own: a stray quote
                        col.bad(queue[0][0], _OPEN_QUOTE)
                        queue = queue[1:]
                        break
                    close(queue[:k + 1])
                    queue = queue[k + 1:]
                    break
            else:
                if len(queue) <= MAX_FIELD_LINES:
                    return queue
                col.bad(queue[0][0], _OPEN_QUOTE)
                queue = queue[1:]
        return queue

    with _open_text(path) as handle:
        reader = _Lines(handle)
        for lineno, piece, complete in reader:
            if lineno < first:
                continue
            if last is not None and lineno > last:
                break
            if not complete:
                continue  # a line this long was reported by the fast reader's pass
            pending.append((lineno, piece))
            pending = settle(pending)
            yield from rows
            rows.clear()
        while pending:  # the end: a quote still open loses its first line only
            col.bad(pending[0][0], _OPEN_QUOTE_AT_END if last is None else _OPEN_QUOTE)
            pending = settle(pending[1:])
        yield from rows


def _parse_csv(path: Path, head: str, whole: bool, mapping: ColumnMapping, fp: _Fingerprints,
               col: _Collector) -> Iterator[Chunk]:
    sniffed = _sniff_csv(head, whole)
    if sniffed is None:
        raise LogFormatError(f"{path}: no CSV header line")
    header_line, delim, header = sniffed
    cells = [c.strip() for c in header]
    lower = [c.lower() for c in cells]
    chosen: dict[str, int] = {}
    for key, column in mapping.columns().items():
        if column in cells:
            chosen[key] = cells.index(column)
        elif column.lower() in lower:
            chosen[key] = lower.index(column.lower())
        elif key in _REQUIRED:
            raise LogFormatError(f"{path}: no column {column!r} (mapping {key})")
    return _read_csv_chunks(path, header_line, delim, chosen, mapping, fp, col)


def _read_csv_chunks(path: Path, header_line: int, delim: str, chosen: dict[str, int],
                     mapping: ColumnMapping, fp: _Fingerprints,
                     col: _Collector) -> Iterator[Chunk]:
    """Read a CSV file chunk by chunk, accounting for every physical line.

    Each row's lines are counted (one, plus the line breaks inside its quoted fields), so a row's
    line number is where it starts and the lines read always add up to the file's. A row holding
    a field that spans more than :data:`MAX_FIELD_LINES` lines, or whose inner lines look like
    rows of their own (as many delimiters as the header), is a quote left open that swallowed
    the rows after it: that row is malformed and the lines it holds are read again one by one
    (:func:`_reread_lines`). When the fast reader fails on a quote open at the end of the file,
    the rest of the file is read the same way.
    """
    action_fn = _action_function(mapping)
    outcome_fn = _outcome_function(mapping)
    skipped: list[int] = []
    lines_read = 0  # physical lines held by the rows read so far
    width = len(_header_cells(path, header_line, delim))

    def mapped(frame: pd.DataFrame, lines: np.ndarray[Any, Any]) -> Chunk:
        raw = {key: frame.iloc[:, i] for key, i in chosen.items() if i < frame.shape[1]}
        return col.chunk(_mapped_frame(raw, lines, mapping, fp, col, path.name,
                                       action_fn, outcome_fn))
    with _open_text(path) as handle:
        # every column is read (not usecols) so that rows with too many fields are reported
        reader = pd.read_csv(
            handle, sep=delim, header=0, skiprows=header_line - 1, dtype=str,
            keep_default_na=False, na_values=[""], skip_blank_lines=False,
            on_bad_lines="warn", chunksize=col.chunk_rows, engine="c", index_col=False,
        )
        with reader:
            while True:
                failed = False
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    try:
                        frame = next(reader)
                    except StopIteration:
                        frame = None
                    except (pd.errors.ParserError, *_READ_ERRORS):
                        frame, failed = None, True
                for warning in caught:
                    found = _SKIPPED.search(str(warning.message))
                    if found:
                        skipped.append(int(found.group(1)))
                        col.bad(skipped[-1], "wrong number of fields")
                if frame is None:
                    first = header_line + lines_read + len(skipped) + 1
                    error = _read_error(handle)
                    if error is not None:
                        col.bad(first, error)
                    elif failed:  # a quote open to the end: the rest, line by line
                        tail = _reread_lines(path, first, None, delim, width, col)
                        while batch := list(itertools.islice(tail, col.chunk_rows)):
                            yield mapped(pd.DataFrame([cells for _, cells in batch],
                                                      dtype=object),
                                         np.asarray([n for n, _ in batch], dtype=np.int64))
                    break
                n = len(frame)
                spans = _row_lines(frame)
                # the file line of each row: after the header and the lines of the rows before
                # it, shifted past the lines pandas skipped (too many fields)
                ends = np.cumsum(spans)
                plain = header_line + 1 + lines_read + ends - spans
                if skipped:
                    marks = np.sort(np.asarray(skipped, dtype=np.int64))
                    shifted = marks - np.arange(len(marks), dtype=np.int64)
                    plain = plain + np.searchsorted(shifted, plain, side="right")
                lines_read += int(ends[-1]) if n else 0
                swallowed = _swallowing(frame, spans, delim)
                if swallowed.any():
                    # the row with the stray quote is lost; the lines it swallowed are read
                    # again one by one
                    extra: list[tuple[int, list[str]]] = []
                    for line, count in zip(plain[swallowed].tolist(), spans[swallowed].tolist(),
                                           strict=True):
                        col.bad(int(line), _OPEN_QUOTE)
                        extra.extend(_reread_lines(path, int(line) + 1, int(line + count - 1),
                                                   delim, width, col))
                    frame, plain = frame[~swallowed], plain[~swallowed]
                    if extra:
                        again = pd.DataFrame([cells for _, cells in extra], dtype=object)
                        again.columns = frame.columns
                        frame = pd.concat([frame, again], ignore_index=True)
                        plain = np.concatenate([plain, np.asarray([n for n, _ in extra],
                                                                  dtype=np.int64)])
                        order = np.argsort(plain, kind="stable")
                        frame, plain = frame.iloc[order].reset_index(drop=True), plain[order]
                for at in range(0, max(len(frame), 1), col.chunk_rows):
                    yield mapped(frame.iloc[at:at + col.chunk_rows],
                                 plain[at:at + col.chunk_rows])
    if col.malformed or not col.emitted:
        yield col.chunk(empty())
