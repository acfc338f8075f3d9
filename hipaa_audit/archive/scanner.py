"""Scan one file of an archive: read its header bytes (read-only) and judge them.

The collector part reads at most the first 64 KiB; a header that runs longer is walked over a
read-only memory map, so pixel data is never read. Everything else is the rules' business.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass

from hipaa_audit.archive.dicom.parser import NeedMoreData, ParsedHeader, parse_header
from hipaa_audit.archive.dicom.profile import load_profile
from hipaa_audit.archive.dicom.rules import DicomRules, audit_dicom
from hipaa_audit.archive.walk import FileTask
from hipaa_audit.catalog import Catalog, Check
from hipaa_audit.model import AssetResult, Finding, Location, Status
from hipaa_audit.redaction import Masker

HEAD_BYTES = 64 * 1024
#: File names that promise DICOM content: such a file that is not DICOM is unverifiable.
DICOM_SUFFIXES = frozenset({".dcm", ".dicom", ".dic", ".ima"})
#: Coverage stat keys, reported in the run summary.
STAT_FILES = "files"
STAT_DICOM = "dicom"
STAT_UNRECOGNISED = "unrecognised"


@dataclass(frozen=True, slots=True)
class ArchiveRules:
    """The rules of the archive scanner, built once per process."""

    dicom: DicomRules
    unverifiable: Check

    @classmethod
    def build(cls, catalog: Catalog, masker: Masker) -> ArchiveRules:
        """Assemble the archive rules from the catalog."""
        return cls(
            dicom=DicomRules.build(catalog, load_profile(), masker),
            unverifiable=catalog["archive-unverifiable"],
        )

    def problem(self, asset: str, reason: str, **where: object) -> Finding:
        """Return the ``unverifiable`` finding (status ``error``) for an asset."""
        locations = (Location.of(**where),) if where else ()
        return self.unverifiable.finding(
            asset, f"Not checked: {reason}.", status=Status.ERROR, locations=locations
        )


def promises_dicom(path: bytes) -> bool:
    """True when the file name says DICOM (``.dcm`` and kin, or ``DICOMDIR``)."""
    name = os.path.basename(path)
    suffix = os.path.splitext(name)[1].lower()
    return suffix.decode("ascii", "replace") in DICOM_SUFFIXES or name.upper() == b"DICOMDIR"


def read_header(path: bytes) -> ParsedHeader | None:
    """Read and walk the DICOM header of ``path``; ``None`` when it is not DICOM.

    Raises ``OSError`` when the file cannot be opened or read.
    """
    with open(path, "rb", buffering=0) as f:
        head = f.read(HEAD_BYTES)
        if len(head) < HEAD_BYTES:
            return parse_header(head, complete=True)
        try:
            return parse_header(head, complete=False)
        except NeedMoreData:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                return parse_header(mapped, complete=True)


def scan_file(task: FileTask, rules: ArchiveRules) -> AssetResult:
    """Scan one file: every DICOM check, or an ``unverifiable`` finding with the reason."""
    result = AssetResult(task.asset)
    cov = result.coverage
    cov.count(rules.unverifiable.id, evaluated=1)
    result.stats[STAT_FILES] = 1
    try:
        header = read_header(task.path)
    except OSError as exc:
        reason = f"the file cannot be read ({exc.strerror})"
        result.findings.append(rules.problem(task.asset, reason))
        cov.count(rules.unverifiable.id, errors=1)
        return result
    if header is None:
        if promises_dicom(task.path):
            size = os.stat(task.path).st_size
            reason = (
                "the file is empty" if size == 0
                else "the name says DICOM but the content has no DICOM header"
            )
            result.findings.append(rules.problem(task.asset, reason))
            cov.count(rules.unverifiable.id, errors=1)
        else:
            result.stats[STAT_UNRECOGNISED] = 1
        return result
    result.stats[STAT_DICOM] = 1
    findings = audit_dicom(header, task.asset, rules.dicom)
    failed = {f.check_id for f in findings}
    for check_id in rules.dicom.check_ids:
        cov.count(check_id, evaluated=1, failed=int(check_id in failed),
                  errors=int(header.fault is not None))
    result.findings.extend(findings)
    if header.fault is not None:
        result.findings.append(rules.problem(
            task.asset,
            f"the DICOM header is damaged: {header.fault.reason}; the elements before it were "
            "checked",
            offset=header.fault.offset,
        ))
        cov.count(rules.unverifiable.id, errors=1)
    return result
