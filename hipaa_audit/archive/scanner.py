"""Scan one file of an archive: read its header bytes (read-only) and judge them.

The collector part reads at most the first 64 KiB of a loose file; a header that runs longer is
walked over a read-only memory map, so pixel data is never read. Containers (zip, tar, gzip,
bzip2, xz, nested) are read in place and every member is judged like a loose file, named
``container!/member``. Everything else is the rules' business.
"""

from __future__ import annotations

import io
import lzma
import mmap
import os
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from typing import IO, BinaryIO, Unpack

from hipaa_audit.archive.containers import (
    BombError,
    Budget,
    Limits,
    Member,
    MemberProblem,
    members,
    sniff_container,
)
from hipaa_audit.archive.content import envelope, high_entropy
from hipaa_audit.archive.dicom.parser import NeedMoreData, ParsedHeader, parse_header
from hipaa_audit.archive.dicom.profile import load_profile
from hipaa_audit.archive.dicom.rules import DicomRules, audit_dicom_terms
from hipaa_audit.archive.exposure import exposure_finding, file_access, names_identifier
from hipaa_audit.archive.pathnames import PATH_CHECK, mask_result, path_finding
from hipaa_audit.archive.walk import FileTask, NotAsWalked, display_name, open_walked
from hipaa_audit.catalog import Catalog, Check
from hipaa_audit.evidence import ArchiveProblem, ContainerSetting, ElidedName, TextExport
from hipaa_audit.model import AssetResult, Finding, Location, Severity, Status, outcome_of
from hipaa_audit.phi.text import TextPhi, analyse
from hipaa_audit.redaction import Masker

HEAD_BYTES = 64 * 1024
#: Longest member name (in characters) kept whole in an asset name; a longer one keeps its two
#: ends around a keyed fingerprint of the whole name (see :func:`member_asset_name`).
MAX_MEMBER_NAME = 1024
#: Characters kept at each end of an elided member name.
NAME_END = 240
#: File names that promise DICOM content: such a file that is not DICOM is unverifiable.
DICOM_SUFFIXES = frozenset({".dcm", ".dicom", ".dic", ".ima"})
#: Coverage stat keys, reported in the run summary.
STAT_FILES = "files"
STAT_DICOM = "dicom"
STAT_UNRECOGNISED = "unrecognised"
STAT_CONTAINERS = "containers"
STAT_MEMBERS = "container_members"
STAT_ENCRYPTED = "encrypted_members_aes"
#: Prefix of the counts of encrypted envelopes by kind (``encrypted_openpgp``...).
STAT_ENCRYPTED_PREFIX = "encrypted_"
STAT_HIGH_ENTROPY = "high_entropy"
STAT_TEXT = "text"
STAT_OCR = "images_read_by_ocr"
FORMAT_LABELS = {"hl7v2": "HL7 v2 message", "fhir-json": "FHIR JSON document",
                 "fhir-ndjson": "FHIR NDJSON (Bulk Data) file",
                 "fhir-xml": "FHIR XML document", "csv": "CSV table", "text": "text file"}
#: What reading a damaged container can raise (each becomes an ``unverifiable`` finding).
CONTAINER_ERRORS = (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError, lzma.LZMAError,
                    zlib.error, ValueError, NotImplementedError)


@dataclass(frozen=True, slots=True)
class ArchiveRules:
    """The rules of the archive scanner, built once per process."""

    dicom: DicomRules
    unverifiable: Check
    zipcrypto: Check
    exposure: Check
    text_phi: Check
    burned_text: Check
    path_name: Check
    long_name: Check
    limits: Limits
    ocr: bool = False
    mask_paths: bool = False

    @classmethod
    def build(cls, catalog: Catalog, masker: Masker, limits: Limits | None = None,
              ocr: bool = False, mask_paths: bool = False) -> ArchiveRules:
        """Assemble the archive rules from the catalog.

        ``ocr``: read burned-in pixel text; ``mask_paths``: mask the path components that look
        like identifiers in every result.
        """
        return cls(
            dicom=DicomRules.build(catalog, load_profile(), masker),
            unverifiable=catalog["archive-unverifiable"],
            zipcrypto=catalog["archive-zipcrypto"],
            exposure=catalog["archive-exposed-phi"],
            text_phi=catalog["archive-unencrypted-phi"],
            burned_text=catalog["dicom-burned-in-text"],
            path_name=catalog[PATH_CHECK],
            long_name=catalog["archive-name-elided"],
            limits=limits or Limits(),
            ocr=ocr,
            mask_paths=mask_paths,
        )

    def unchecked(self, asset: str, reason: str, **stats: int) -> AssetResult:
        """Return the result of an asset that could not be checked at all, and why."""
        result = AssetResult(asset, stats=dict(stats))
        result.findings.append(self.problem(asset, reason))
        result.coverage.record(self.unverifiable.id, "error")
        return result

    def problem(self, asset: str, reason: str, **where: Unpack[ArchiveProblem]) -> Finding:
        """Return the ``unverifiable`` finding (status ``error``) for an asset."""
        locations = (Location.of_evidence(where),) if where else ()
        return self.unverifiable.finding(
            asset, f"Not checked: {reason}.", status=Status.ERROR, locations=locations
        )


def promises_dicom(name: str) -> bool:
    """True when a file name says DICOM (``.dcm`` and kin, or ``DICOMDIR``)."""
    base = name.rsplit("/", 1)[-1]
    suffix = os.path.splitext(base)[1].lower()
    return suffix in DICOM_SUFFIXES or base.upper() == "DICOMDIR"


def _file_header(head: bytes, f: BinaryIO) -> ParsedHeader | None:
    """Walk a loose file's header: the first bytes, or the whole file memory-mapped."""
    if len(head) < HEAD_BYTES:
        return parse_header(head, complete=True)
    try:
        return parse_header(head, complete=False)
    except NeedMoreData:
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return parse_header(mapped, complete=True)


def read_header(path: bytes) -> ParsedHeader | None:
    """Read and walk the DICOM header of the file ``path``; ``None`` when it is not DICOM.

    Raises ``OSError`` when the file cannot be opened or read.
    """
    with open(path, "rb", buffering=0) as f:
        return _file_header(f.read(HEAD_BYTES), f)


def _stream_header(head: bytes, stream: IO[bytes]) -> ParsedHeader | None:
    """Walk a container member's header: read on only as far as the walk needs (within its cap).

    Each retry reads at least as much again as was read so far, so the walks cost no more than
    twice the bytes, and pixel data after the header is never read.
    """
    data = head
    complete = len(head) < HEAD_BYTES
    while True:
        try:
            return parse_header(data, complete=complete)
        except NeedMoreData as more:
            chunk = stream.read(max(more.needed - len(data), len(data)))
            complete = not chunk or len(data) + len(chunk) < more.needed
            data += chunk


def scan_file(task: FileTask, rules: ArchiveRules) -> list[AssetResult]:
    """Scan one file: a DICOM file, a container (every member), or anything else.

    Returns one result per asset: the file, or the container and each of its members.
    """
    try:
        f, st = open_walked(task)
    except NotAsWalked as exc:
        return [rules.unchecked(task.asset, exc.reason, **{STAT_FILES: 1})]
    except OSError as exc:
        return [_unreadable(task.asset, rules, exc)]
    with f:
        try:
            head = f.read(HEAD_BYTES)
            kind = sniff_container(head)
            if kind is not None:
                f.seek(0)
                results = scan_container(f, kind, task.asset, rules, depth=1,
                                         budget=Budget(rules.limits.max_total_bytes))
            else:
                name = display_name(os.path.basename(task.path))
                header = _file_header(head, f)
                results = [judge(header, task.asset, rules, named_dicom=promises_dicom(name),
                                 head=head, more=f)]
                if rules.ocr and header is not None and header.reached_pixel_data:
                    f.seek(0)
                    read_pixels(f.read(), header, results[0], rules)
        except OSError as exc:
            return [_unreadable(task.asset, rules, exc)]
    _check_exposure(task.path, st, results, rules)
    return results


def holds_phi(results: list[AssetResult]) -> bool:
    """True when any of a file's results (itself or its members) found an identifier's value.

    See :func:`names_identifier`: a missing BurnedInAnnotation or a private element alone does
    not count, nor does a patient's name in the path (reading the file shows no more of it than
    listing its folder does).
    """
    return any(names_identifier(f) for r in results for f in r.findings)


def _check_exposure(path: bytes, st: os.stat_result, results: list[AssetResult],
                    rules: ArchiveRules) -> None:
    """Judge who may reach a file that holds PHI (its own asset carries the finding)."""
    if not holds_phi(results):
        return
    own = results[0]
    finding = exposure_finding(file_access(path, st), own.asset, rules.exposure)
    own.coverage.record(rules.exposure.id, outcome_of(failed=finding is not None))
    if finding is not None:
        own.findings.append(finding)


def _unreadable(asset: str, rules: ArchiveRules, exc: OSError) -> AssetResult:
    return rules.unchecked(asset, f"the file cannot be read ({exc.strerror})",
                           **{STAT_FILES: 1})


def member_asset_name(container: str, name: str, masker: Masker) -> tuple[str, bool]:
    """Return the asset name of a container's member, and whether its name was elided.

    A member name longer than :data:`MAX_MEMBER_NAME` characters keeps its first and last
    :data:`NAME_END` characters around its length and the keyed fingerprint of the whole name,
    so that two long names stay two assets (and two finding ids) without megabytes reaching
    the reports.
    """
    if not name:
        return container, False
    if len(name) <= MAX_MEMBER_NAME:
        return f"{container}!/{name}", False
    middle = f"[...{len(name)} characters, name fingerprint {masker.fingerprint(name)}...]"
    return f"{container}!/{name[:NAME_END]}{middle}{name[-NAME_END:]}", True


def scan_container(stream: IO[bytes], kind: str, asset: str, rules: ArchiveRules, *,
                   depth: int, budget: Budget) -> list[AssetResult]:
    """Scan every member of a container (nested ones too, down to the depth cap).

    ``budget`` counts the expanded bytes of the whole file, nested containers included. Each
    member is judged on its own: a member that cannot be read gives its own ``unverifiable``
    finding and the members after it are still checked.
    """
    own = AssetResult(asset, stats={STAT_FILES: 1, STAT_CONTAINERS: 1} if depth == 1
                      else {STAT_CONTAINERS: 1})
    own.coverage.record(rules.unverifiable.id, "pass")
    results = [own]
    try:
        for member in members(kind, stream, asset.rsplit("!/", 1)[-1], rules.limits, budget):
            member_asset, elided = member_asset_name(asset, member.name, rules.dicom.masker)
            if isinstance(member, MemberProblem):
                results.append(_member_problem(member, member_asset, rules))
            else:
                results.extend(_scan_one_member(member, member_asset, rules, depth, budget))
            if elided:
                results[-1].findings.append(_long_name_finding(member_asset, member.name,
                                                               rules))
            if budget.used > budget.limit:  # a member spent the file's budget: stop here
                raise BombError(f"expands past the cap of {budget.limit} bytes")
    except BombError as exc:
        own.findings.append(rules.problem(
            asset, f"the container {exc.reason}; what follows was not checked"))
        own.coverage.record(rules.unverifiable.id, "error")
    except CONTAINER_ERRORS as exc:
        own.findings.append(rules.problem(
            asset, f"the {kind} container cannot be read ({type(exc).__name__}); its members "
                   "after the fault were not checked"))
        own.coverage.record(rules.unverifiable.id, "error")
    return results


def _scan_one_member(member: Member, asset: str, rules: ArchiveRules, depth: int,
                     budget: Budget) -> list[AssetResult]:
    """Scan one member; whatever stops its check becomes its own ``unverifiable`` finding."""
    try:
        return scan_member(member, asset, rules, depth, budget)
    except Exception as exc:  # a bad CRC, a RecursionError...: the type only, never a value
        return [rules.unchecked(
            asset, f"the member cannot be read to the end ({type(exc).__name__}); the other "
                   "members were still checked", **{STAT_MEMBERS: 1})]


def _long_name_finding(asset: str, name: str, rules: ArchiveRules) -> Finding:
    """The finding that a member's name was too long to report whole."""
    return rules.long_name.finding(
        asset,
        f"The member's name is {len(name)} characters long, more than the {MAX_MEMBER_NAME} "
        "kept in a report: its middle is replaced by its length and a keyed fingerprint. Names "
        "this long are not written by ordinary tools.",
        locations=(Location.of_evidence(ElidedName(
            name_length=len(name), fingerprint=rules.dicom.masker.fingerprint(name))),),
    )


def _member_problem(problem: MemberProblem, asset: str, rules: ArchiveRules) -> AssetResult:
    result = AssetResult(asset, stats={STAT_MEMBERS: 1})
    cov = result.coverage
    if problem.encrypted is not None:
        weak = problem.encrypted == "zipcrypto"
        cov.record(rules.zipcrypto.id, outcome_of(failed=weak))
        if weak:
            result.findings.append(rules.zipcrypto.finding(
                asset, "The member is encrypted with legacy ZipCrypto, a cipher broken by "
                       "known-plaintext attacks: not encryption in the HIPAA sense.",
                locations=(Location.of_evidence(
                    ContainerSetting(setting="zip encryption", evidence="ZipCrypto")),)))
        else:
            result.stats[STAT_ENCRYPTED] = 1
        return result
    # a problem of the container itself (no member name) is no member
    return rules.unchecked(asset, problem.reason, **({STAT_MEMBERS: 1} if problem.name else {}))


def scan_member(member: Member, asset: str, rules: ArchiveRules, depth: int,
                budget: Budget) -> list[AssetResult]:
    """Scan one container member: DICOM, a nested container, or anything else."""
    try:
        head = member.stream.read(HEAD_BYTES)
        kind = sniff_container(head)
        if kind is not None:
            if depth >= rules.limits.max_depth:
                return [rules.unchecked(
                    asset, f"a container nested deeper than {rules.limits.max_depth} levels",
                    **{STAT_MEMBERS: 1})]
            nested = io.BytesIO(head + member.stream.read())
            results = scan_container(nested, kind, asset, rules, depth=depth + 1, budget=budget)
            results[0].stats[STAT_MEMBERS] = 1
            return results
        if rules.ocr:  # the pixels are needed too: the whole member, within its cap
            data = head + member.stream.read()
            header = parse_header(data, complete=True)
        else:
            data = head
            header = _stream_header(head, member.stream)
    except BombError as exc:
        return [rules.unchecked(asset, f"the member {exc.reason} (a zip bomb?)",
                                **{STAT_MEMBERS: 1})]
    more = member.stream if data is head else io.BytesIO(data[len(head):])
    try:  # a text export is read on past its head, within the member's caps
        result = judge(header, asset, rules, named_dicom=promises_dicom(member.name),
                       head=head, more=more)
    except BombError as exc:
        return [rules.unchecked(asset, f"the member {exc.reason} (a zip bomb?)",
                                **{STAT_MEMBERS: 1})]
    if rules.ocr and header is not None and header.reached_pixel_data:
        read_pixels(data, header, result, rules)
    result.stats.pop(STAT_FILES, None)
    result.stats[STAT_MEMBERS] = 1
    return [result]


def read_pixels(data: bytes, header: ParsedHeader, result: AssetResult,
                rules: ArchiveRules) -> None:
    """``--ocr``: read the burned-in text of an image and add what matches identifiers."""
    from hipaa_audit.archive.dicom.ocr import burned_in_finding, frames, read_words

    cov = result.coverage
    try:
        words = [w for index, img in frames(data) for w in read_words(index, img)]
    except Exception as exc:  # a codec pydicom lacks, odd pixel data: reported, never fatal
        cov.record(rules.burned_text.id, "error")
        result.findings.append(rules.problem(
            result.asset, f"--ocr could not decode its pixels ({type(exc).__name__})"))
        return
    result.stats[STAT_OCR] = 1
    finding = burned_in_finding(words, header, result.asset, rules.burned_text)
    cov.record(rules.burned_text.id, outcome_of(failed=finding is not None))
    if finding is not None:
        result.findings.append(finding)


def _text_phi_finding(text: TextPhi, asset: str, check: Check) -> Finding:
    summary = ", ".join(f"{kind} x{n}" for kind, n in text.kinds.items())
    severity = Severity.CRITICAL if "ssn" in text.kinds else check.severity
    label = FORMAT_LABELS.get(text.format, text.format)
    return check.finding(
        asset,
        f"This unencrypted {label} holds PHI ({summary}) in {text.records} record(s); anyone "
        "who can read the file can read them.",
        severity=severity,
        locations=(Location.of_evidence(TextExport(
            format=text.format, found=text.kinds, records=text.records, sample=text.scope,
            unread_items=text.unread or None)),),
    )


def judge(header: ParsedHeader | None, asset: str, rules: ArchiveRules, *, named_dicom: bool,
          head: bytes, more: IO[bytes] | None = None) -> AssetResult:
    """Judge one asset's bytes: every DICOM check, or what it is and why it was not checked.

    ``more``: the rest of a file that is not DICOM, after ``head``, for the text exports read
    whole (HL7 v2, FHIR JSON and NDJSON), within :data:`~hipaa_audit.phi.text.MAX_TEXT_BYTES`.
    """
    result = AssetResult(asset, stats={STAT_FILES: 1})
    cov = result.coverage
    cov.record(rules.unverifiable.id, "pass")
    tokens: frozenset[str] = frozenset()
    phrases: frozenset[str] = frozenset()
    if header is not None:
        tokens, phrases = _judge_dicom(header, result, rules)
    else:
        _judge_other(head, result, rules, named_dicom, more)
    masker = rules.dicom.masker
    finding = path_finding(asset, rules.path_name, masker, tokens, phrases)
    cov.record(rules.path_name.id, outcome_of(failed=finding is not None))
    if finding is not None:
        result.findings.append(finding)
    if rules.mask_paths:
        mask_result(result, masker, tokens, phrases)
    return result


def _judge_other(head: bytes, result: AssetResult, rules: ArchiveRules, named_dicom: bool,
                 more: IO[bytes] | None = None) -> None:
    """Judge bytes that are not DICOM: an envelope, a text export, or unverifiable."""
    asset = result.asset
    cov = result.coverage
    empty = not head
    kind = envelope(head)
    if kind is not None:  # protected, even when named .dcm
        result.stats[f"{STAT_ENCRYPTED_PREFIX}{kind}"] = 1
    elif named_dicom:
        reason = ("the file is empty" if empty
                  else "the name says DICOM but the content has no DICOM header")
        if not empty and high_entropy(head):
            reason += " (its bytes look random: encrypted in an unknown way, or corrupt)"
        result.findings.append(rules.problem(asset, reason))
        cov.record(rules.unverifiable.id, "error")
    elif (text := analyse(head, more)) is not None:
        result.stats[STAT_TEXT] = 1
        cov.record(rules.text_phi.id, outcome_of(failed=bool(text.kinds)))
        if text.kinds:
            result.findings.append(_text_phi_finding(text, asset, rules.text_phi))
        elif text.partial:
            # no PHI in what was read, but not all of it could be: say so, never a silent pass
            parts = []
            if text.unread:
                parts.append(f"{text.unread} item(s) too long or malformed were skipped")
            if text.scope != "whole file":
                parts.append(f"only the {text.scope} were read")
            result.findings.append(rules.problem(
                asset, f"the {FORMAT_LABELS.get(text.format, text.format)} was read in part: "
                       f"{'; '.join(parts)}", format=text.format, sample=text.scope))
            cov.record(rules.unverifiable.id, "error")
    elif high_entropy(head):
        result.stats[STAT_HIGH_ENTROPY] = 1
    else:
        result.stats[STAT_UNRECOGNISED] = 1


def _judge_dicom(header: ParsedHeader, result: AssetResult, rules: ArchiveRules
                 ) -> tuple[frozenset[str], frozenset[str]]:
    """Run the DICOM checks; return the file's own identifiers (words, phrases)."""
    asset = result.asset
    cov = result.coverage
    result.stats[STAT_DICOM] = 1
    findings, tokens, phrases = audit_dicom_terms(header, asset, rules.dicom)
    failed = {f.check_id for f in findings}
    damaged = header.fault is not None
    for check_id in rules.dicom.check_ids:
        cov.record(check_id, outcome_of(failed=check_id in failed, error=damaged))
    result.findings.extend(findings)
    if header.fault is not None:
        result.findings.append(rules.problem(
            asset,
            f"the DICOM header is damaged: {header.fault.reason}; the elements before it were "
            "checked",
            offset=header.fault.offset,
        ))
        cov.record(rules.unverifiable.id, "error")
    return tokens, phrases
