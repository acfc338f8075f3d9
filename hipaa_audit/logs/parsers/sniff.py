"""Tell a log's format from its first bytes."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from hipaa_audit.logs.parsers.common import FORMATS, LogFormatError, _read_head

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
