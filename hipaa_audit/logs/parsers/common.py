"""What the log parsers share: limits, errors, fingerprints, the row collector and the file readers.

Files are opened through gzip when their magic bytes say so, decoded as UTF-8 (a BOM dropped,
undecodable bytes replaced) and read in bounded pieces; each record becomes a :class:`_Row` that
:class:`_Collector` gathers into chunks of the event table, counting the malformed ones.
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import numpy as np
import pandas as pd
import pyarrow as pa

from hipaa_audit.errors import HipaaAuditError
from hipaa_audit.logs.schema import (
    STRING_DTYPE,
    Chunk,
    Malformed,
    empty,
    normalise,
    valid_text,
)
from hipaa_audit.redaction import Masker

#: The formats :func:`parse_file` reads.
FORMATS = ("atna", "fhir", "cloudtrail", "csv", "jsonl")
#: Bytes (decompressed) that :func:`detect_format` looks at.
HEAD_BYTES = 64 * 1024
#: A single record (XML message, JSON value, text line) larger than this is malformed.
MAX_RECORD_CHARS = 16 * 1024 * 1024
#: Fingerprints remembered per parse (patients and studies repeat); cleared when full.
FINGERPRINT_CACHE = 1_000_000
#: Labels (user agents, error codes, detail values) up to this long are remembered, this many.
_LABEL_CACHED = 256
_LABEL_CACHE = 65_536
#: A count or byte size beyond this (2^62) is not a plausible value: the record is malformed.
MAX_NUMBER = 2**62

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


class _Fingerprints:
    """Keyed fingerprints of identifiers, remembered for the parse (values repeat)."""

    def __init__(self, masker: Masker) -> None:
        self._fingerprint = masker.fingerprint
        self._cache: dict[str, str] = {}
        self._labels: dict[str, str] = {}  # short plain labels (no known ids, no codes)
        # short labels screened without ``known``: True, False or their lower case (to look
        # for ``known`` in); with DICOM codes let through, and without
        self._codes: dict[str, bool | str] = {}
        self._screened: dict[str, bool | str] = {}

    def __call__(self, value: str) -> str:
        cache = self._cache
        out = cache.get(value)
        if out is None:
            if len(cache) >= FINGERPRINT_CACHE:
                cache.clear()
            try:
                out = self._fingerprint(value)
            except UnicodeEncodeError:  # half a surrogate pair: as the table will hold it
                out = self._fingerprint(valid_text(value))
            cache[value] = out
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
        if value is None:
            return None
        if len(value) > _LABEL_CACHED:
            return self.mask(value) if may_identify(value, known, codes) else value
        if not (known or codes):
            return self.text(value)
        # may_identify in two steps: what the text alone says (remembered), then ``known``
        screened = self._codes if codes else self._screened
        seen = screened.get(value)
        if seen is None:
            text = _DICOM_CODE.sub("", value) if codes else value
            seen = ((_UUID.fullmatch(value) is None) if _IDENTIFIER_LIKE.search(text)
                    else (False if _UUID.fullmatch(value) else value.lower()))
            if len(screened) >= _LABEL_CACHE:
                screened.clear()
            screened[value] = seen
        if seen is False:
            return value
        if seen is not True:
            for k in known:
                if k is not None and len(k) >= 3 and k.lower() in seen:
                    break
            else:
                return value
        return f"{MASKED_LABEL}{self(value)}"

    def text(self, value: str) -> str:
        """``label(value)`` of a text (no known ids, no codes), remembered when short."""
        labels = self._labels
        out = labels.get(value)
        if out is None:
            out = f"{MASKED_LABEL}{self(value)}" if may_identify(value) else value
            if len(value) <= _LABEL_CACHED:
                if len(labels) >= _LABEL_CACHE:
                    labels.clear()
                labels[value] = out
        return out

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
    text = _DICOM_CODE.sub("", value) if codes else value
    if _IDENTIFIER_LIKE.search(text):
        return _UUID.fullmatch(value) is None
    if not known or _UUID.fullmatch(value):
        return False
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


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


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
        data[name] = _string_array(columns[name])
    for name in ("objects", "bytes", "line"):
        data[name] = pd.array(columns[name], dtype="Int64")
    n = len(rows)
    data["format"] = _string_array([fmt] * n)
    data["source"] = _string_array([source] * n)
    frame = pd.DataFrame(data)
    bad = frame["time"].isna().to_numpy()
    if bad.any():
        for line in lines[bad].tolist():
            malformed.append(Malformed(source, int(line), "bad timestamp"))
        frame = frame[~bad]
    return normalise(frame)


def _string_array(values: Sequence[str | None] | np.ndarray[Any, Any]) -> Any:
    """``pd.array(values, dtype=STRING_DTYPE)``, built by pyarrow straight from the texts."""
    try:
        return pd.arrays.ArrowStringArray(pa.array(values, type=pa.large_string()))
    except (pa.ArrowException, UnicodeError):  # not all texts (or not encodable): as pandas does
        try:
            return pd.array(values, dtype=STRING_DTYPE)
        except UnicodeEncodeError:  # half a surrogate pair, from a JSON escape: made valid
            return pd.array([valid_text(v) for v in values], dtype=STRING_DTYPE)


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
