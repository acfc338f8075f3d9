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

from collections.abc import Iterator
from pathlib import Path

from hipaa_audit.logs.parsers.atna import _parse_atna
from hipaa_audit.logs.parsers.cloudtrail import _cloudtrail_records
from hipaa_audit.logs.parsers.common import (
    FORMATS,
    LogFormatError,
    _Collector,
    _Fingerprints,
    _read_head,
    may_identify,
)
from hipaa_audit.logs.parsers.delimited import _parse_csv
from hipaa_audit.logs.parsers.fhir import _fhir_records, _fhir_xml_row
from hipaa_audit.logs.parsers.jsonl import _parse_jsonl
from hipaa_audit.logs.parsers.jsonstream import _parse_json_records
from hipaa_audit.logs.parsers.mapped import ColumnMapping
from hipaa_audit.logs.parsers.sniff import _FHIR_XML_END, _FHIR_XML_START, detect_format
from hipaa_audit.logs.parsers.zones import record_offsets, zone_of_offsets
from hipaa_audit.logs.schema import Chunk
from hipaa_audit.redaction import Masker

__all__ = [
    "FORMATS",
    "ColumnMapping",
    "LogFormatError",
    "detect_format",
    "may_identify",
    "parse_file",
    "record_offsets",
    "zone_of_offsets",
]


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
