"""The evidence every check writes, as types: one TypedDict per shape of location.

A finding's evidence is its ``locations``: each :class:`~hipaa_audit.model.Location` holds the
fields of one TypedDict below, in the order the TypedDict is built (that order is the JSON
order, so the ``hipaa-audit.findings/1`` output does not change). Rules build the TypedDicts
(``Location.of_evidence(PermissionGrant(principal=..., ...))``) or pass their fields through a
helper typed with ``**where: Unpack[...]``, so mypy checks every key where it is written. The
DICOM hot path builds its location tuples by hand (no dict per element), and a log anomaly names
its subject key at run time (``user``, ``system``, ``device`` or ``source_ip``): their shapes are
declared here all the same, and checked at run time only.

Readers go through ``Location.text(key)``, whose ``key`` is an :data:`EvidenceKey` (the literal
of every key declared here), so reading a key no check writes is a type error.

:data:`CHECK_EVIDENCE` says which shapes each catalog check may write, and
:func:`evidence_problems` checks a finding against it at run time (pydantic, extra keys
forbidden). The tests run every finding they make through it, so a new key, a renamed key or a
check without a declared shape fails there.

Run-level evidence (the per-endpoint, per-bucket, per-log and permission summaries the reports
show, and the storage encryption of the scanned paths) is :class:`RunEvidence`.

The history store is a boundary: it gives back whatever JSON the run was stored with, possibly
by an older version. It is *not* validated into these types on the way back (a stored run of an
older version must still render). It stays ``Mapping[str, object]`` and is narrowed by
:func:`stored_run_evidence`, the one path from a stored run's metadata to :class:`RunEvidence`:
each part that is not of the expected container type is dropped, never guessed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any, Literal, NotRequired, cast

from pydantic import ConfigDict, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

#: Forbid keys a type does not declare, and do not coerce values (``"1"`` is not an int).
_STRICT = ConfigDict(extra="forbid", strict=True)

# -- archive: DICOM ----------------------------------------------------------------------------


@with_config(_STRICT)
class DicomElement(TypedDict):
    """A DICOM element that still holds a value de-identification should have removed."""

    tag_path: Sequence[str]
    keyword: str
    path: str
    vr: str
    kind: str
    action: NotRequired[str]
    severity: str
    evidence: str
    reason: NotRequired[str]


@with_config(_STRICT)
class DicomValue(TypedDict):
    """A DICOM element (overlay, BurnedInAnnotation) and its masked value."""

    tag_path: Sequence[str]
    keyword: str
    path: str
    vr: NotRequired[str]
    evidence: str


@with_config(_STRICT)
class DicomTextMatch(TypedDict):
    """A free-text DICOM element in which identifier patterns were found."""

    tag_path: Sequence[str]
    keyword: str
    path: str
    vr: str
    found: Mapping[str, int]
    evidence: str


@with_config(_STRICT)
class DicomBlock(TypedDict):
    """A block of elements: a private creator's block, a curve group, an icon sequence."""

    tag_path: Sequence[str]
    keyword: str
    path: str
    creator: NotRequired[str]
    elements: NotRequired[int]


@with_config(_STRICT)
class DicomSetting(TypedDict):
    """A de-identification attribute that is absent or says something it should not."""

    tag_path: Sequence[str]
    keyword: str
    setting: str
    evidence: NotRequired[str | None]


@with_config(_STRICT)
class Box(TypedDict):
    """A rectangle in pixels."""

    left: int
    top: int
    width: int
    height: int


@with_config(_STRICT)
class OcrText(TypedDict):
    """A line of burned-in pixel text: where it is and which identifiers it holds."""

    frame: int
    box: Box
    found: Mapping[str, int]
    words: int


# -- archive: files and containers -------------------------------------------------------------


@with_config(_STRICT)
class PathComponent(TypedDict):
    """A component of a file's path that looks like an identifier."""

    component: int
    found: Sequence[str]
    evidence: str


@with_config(_STRICT)
class FileAccess(TypedDict):
    """Who may read or change a file that holds PHI."""

    setting: str
    owner: str
    group: str
    mode: str
    permissions: str
    acl: str | None
    writable_folder: str | None


@with_config(_STRICT)
class ContainerSetting(TypedDict):
    """A container's setting, e.g. its encryption."""

    setting: str
    evidence: str


@with_config(_STRICT)
class ElidedName(TypedDict):
    """A member name too long to show: its length and fingerprint only."""

    name_length: int
    fingerprint: str


@with_config(_STRICT)
class TextExport(TypedDict):
    """A text export (CSV, HL7, JSON...) that holds identifiers."""

    format: str
    found: Mapping[str, int]
    records: int
    sample: str
    unread_items: int | None


@with_config(_STRICT)
class ArchiveProblem(TypedDict, total=False):
    """What is known of where an asset could not be read in full (every key is optional)."""

    format: str
    sample: str
    offset: int


# -- network ---------------------------------------------------------------------------------


@with_config(_STRICT)
class EndpointSetting(TypedDict):
    """The setting a network check saw, and the policy clause it was judged by.

    Every one names its ``setting``; some add its ``value``, the ``protocol`` it was seen on or
    the ``error`` of a failed probe. ``policy`` and ``clause`` (always both) name the rule of
    the TLS policy it was judged against, when it was judged against one.
    """

    protocol: NotRequired[str]
    setting: str
    value: NotRequired[str | int | bool | Sequence[str] | None]
    error: NotRequired[str]
    policy: NotRequired[str]
    clause: NotRequired[str]


@with_config(_STRICT)
class ProtocolVersion(TypedDict):
    """A protocol version offered or missing, and the clause of the policy that says so."""

    protocol: str
    clause: str
    policy: str


@with_config(_STRICT)
class ProbeStage(TypedDict):
    """What a probe was doing when its deadline stopped it."""

    stage: str


@with_config(_STRICT)
class CipherSuite(TypedDict):
    """An accepted cipher suite and the policy clause it breaks."""

    protocol: str
    suite: str
    policy: str
    clause: str


# -- S3 ------------------------------------------------------------------------------------------


@with_config(_STRICT)
class BlockPublicAccess(TypedDict):
    """The Block Public Access flags that are off, and those that could not be read."""

    off: Sequence[str]
    unknown: Sequence[str] | None


@with_config(_STRICT)
class PublicGrants(TypedDict):
    """The grants of a bucket or object ACL to everyone or to any AWS user."""

    grants: Sequence[str]


@with_config(_STRICT)
class OwnershipSetting(TypedDict):
    """The Object Ownership of a bucket that still honours object ACLs."""

    ownership: str


@with_config(_STRICT)
class TlsOnlyPolicy(TypedDict):
    """A bucket policy that does not deny plain HTTP, and the TLS version it asks for."""

    min_tls: str | None


@with_config(_STRICT)
class PublicPolicy(TypedDict):
    """The policy statements open to everyone, and whether the store says the bucket is public."""

    statements: Sequence[str]
    store_says_public: bool | None


@with_config(_STRICT)
class ForeignAccounts(TypedDict):
    """The untrusted accounts a bucket policy lets in, and the principals it cannot resolve."""

    accounts: Sequence[str]
    unresolved: Sequence[str] | None


@with_config(_STRICT)
class EncryptionAlgorithm(TypedDict):
    """The default encryption algorithm of a bucket holding PHI."""

    algorithm: str


@with_config(_STRICT)
class ReplicationProblems(TypedDict):
    """How many replication rules do not keep the copies encrypted."""

    rules: int


@with_config(_STRICT)
class VersioningStatus(TypedDict):
    """The versioning state of a bucket that is not versioned."""

    status: str


@with_config(_STRICT)
class RetentionClass(TypedDict):
    """The records a retention bucket holds (its Object Lock is absent, or its lifecycle short)."""

    retention: str


@with_config(_STRICT)
class ObjectLockRetention(TypedDict):
    """The default retention of a retention bucket's Object Lock that falls short."""

    retention: str
    mode: str | None
    years: int | None
    days: int | None


@with_config(_STRICT)
class ObjectReadMethod(TypedDict):
    """How an object's encryption was read (an object stored without it)."""

    method: str


#: Every shape of location an S3 bucket or object setting check writes.
S3Setting = (BlockPublicAccess | PublicGrants | OwnershipSetting | TlsOnlyPolicy | PublicPolicy
             | ForeignAccounts | EncryptionAlgorithm | ReplicationProblems | VersioningStatus
             | RetentionClass | ObjectLockRetention | ObjectReadMethod)


@with_config(_STRICT)
class S3Inventory(TypedDict):
    """What an S3 Inventory report says of a bucket's objects' encryption."""

    method: str
    report: str
    by_status: Mapping[str, int]
    sample_keys: Sequence[str]


@with_config(_STRICT)
class UncheckedPart(TypedDict):
    """Which check an ``unverifiable`` finding stands for."""

    check: str


# -- permissions ---------------------------------------------------------------------------------


@with_config(_STRICT)
class PermissionGrant(TypedDict):
    """A grant of access to a resource, and the roles that would explain it."""

    principal: str
    resource: str
    actions: str
    grant: str
    conditions: str | None
    roles: str


@with_config(_STRICT)
class PermissionPath(TypedDict):
    """How a principal reaches a resource: groups, assumed roles, the grant at the end."""

    principal: str
    resource: str
    path: str
    actions: str


@with_config(_STRICT)
class AccountUse(TypedDict):
    """An account and when it was last used."""

    principal: str
    last_used: str | None


@with_config(_STRICT)
class PermissionChange(TypedDict):
    """A grant or membership added or removed since the previous run."""

    principal: str | None
    change: str


# -- logs ----------------------------------------------------------------------------------------


@with_config(_STRICT)
class LogAnomaly(TypedDict):
    """An anomaly of the activity review: its subject, window, counts and events.

    The subject is one of ``user``, ``system``, ``device`` or ``source_ip``; a new source
    names the new ``source_ip`` or ``device`` too.
    """

    user: NotRequired[str]
    system: NotRequired[str]
    device: NotRequired[str]
    source_ip: NotRequired[str]
    window: str
    counts: Mapping[str, int | float]
    baseline: str
    event_ids: Sequence[str]


@with_config(_STRICT)
class RuleMatch(TypedDict):
    """A Sigma rule that matched: the rule, the group of events, their window and ids."""

    rule: str
    level: str
    kind: str
    group: Mapping[str, str]
    window: str
    event_ids: Sequence[str]


@with_config(_STRICT)
class IntegrityBreak(TypedDict):
    """Where a hash chain or a CloudTrail digest does not hold."""

    kind: str
    stream: str
    position: int | None
    window: str | None


@with_config(_STRICT)
class MalformedRecords(TypedDict):
    """Records of a log that could not be parsed: how many, the first lines, why."""

    lines: Sequence[int]
    reasons: Sequence[str]
    records: int


#: Every shape of location a check may write.
Evidence = (DicomElement | DicomValue | DicomTextMatch | DicomBlock | DicomSetting | OcrText
            | PathComponent | FileAccess | ContainerSetting | ElidedName | TextExport
            | ArchiveProblem | EndpointSetting | ProtocolVersion | ProbeStage | CipherSuite
            | S3Setting | S3Inventory
            | UncheckedPart | PermissionGrant | PermissionPath | AccountUse | PermissionChange
            | LogAnomaly | RuleMatch | IntegrityBreak | MalformedRecords)

#: Every key a location may hold (a test keeps it equal to the keys of the types above):
#: readers name keys through it, so a key no check writes is a type error where it is read.
EvidenceKey = Literal[
    "accounts", "acl", "action", "actions", "algorithm", "baseline", "box", "by_status", "change",
    "check", "clause", "component", "conditions", "counts", "creator", "days", "device",
    "elements", "error", "event_ids", "evidence", "fingerprint", "format", "found", "frame",
    "grant", "grants", "group", "keyword", "kind", "last_used", "level", "lines", "method",
    "min_tls", "mode", "name_length", "off", "offset", "owner", "ownership", "path", "permissions",
    "policy", "position", "principal", "protocol", "reason", "reasons", "records", "report",
    "resource", "retention", "roles", "rule", "rules", "sample", "sample_keys", "setting",
    "severity", "source_ip", "stage", "statements", "status", "store_says_public", "stream",
    "suite", "system", "tag_path", "unknown", "unread_items", "unresolved", "user", "value", "vr",
    "window", "words", "writable_folder", "years",
]

_ANOMALY_CHECKS = ("log-break-glass", "log-bulk-export", "log-clock-skew", "log-dormant-account",
                   "log-failed-logins", "log-logging-gap", "log-mass-deletion", "log-new-source",
                   "log-off-hours", "log-password-spray", "log-permission-change",
                   "log-snooping", "log-storage-change")
_SUITE_CHECKS = ("tls-broken-cipher", "tls-cbc-cipher", "tls-cipher-outside-policy",
                 "tls-no-forward-secrecy")
_NETWORK_CHECKS = (
    "cert-expired", "cert-expiring-soon", "cert-hostname-mismatch", "cert-long-lifetime",
    "cert-untrusted", "cert-weak-key", "cert-weak-signature", "dicom-plaintext",
    "dicom-tls-no-client-auth", "http-plaintext", "https-hsts-missing", "https-hsts-weak",
    "network-endpoint-stopped-answering", "tls-ccs-injection", "tls-compression",
    "tls-curve-outside-policy", "tls-heartbleed", "tls-insecure-renegotiation",
    "tls-no-extended-master-secret", "tls-no-fallback-scsv", "tls-no-ocsp-stapling", "tls-robot",
    "tls-weak-key-exchange")
_VERSION_CHECKS = ("tls-legacy-protocol", "tls-required-protocol-missing", "tls-ssl-protocol")

#: The shapes of location each catalog check may write (a check with none writes no location).
CHECK_EVIDENCE: Mapping[str, tuple[type, ...]] = {
    # archive
    "dicom-residual-identifier": (DicomElement,),
    "dicom-false-deidentification": (DicomElement,),
    "dicom-overlay": (DicomValue,),
    "dicom-burned-in-annotation": (DicomValue, DicomSetting),
    "dicom-deidentification-declaration": (DicomSetting,),
    "dicom-identifier-in-text": (DicomTextMatch,),
    "dicom-private-elements": (DicomBlock,),
    "dicom-curve-data": (DicomBlock,),
    "dicom-icon-image": (DicomBlock,),
    "dicom-burned-in-text": (OcrText,),
    "archive-identifier-in-path": (PathComponent,),
    "archive-exposed-phi": (FileAccess,),
    "archive-zipcrypto": (ContainerSetting,),
    "archive-name-elided": (ElidedName,),
    "archive-unencrypted-phi": (TextExport,),
    "archive-unverifiable": (ArchiveProblem,),
    # network
    **{c: (EndpointSetting,) for c in _NETWORK_CHECKS},
    **{c: (ProtocolVersion,) for c in _VERSION_CHECKS},
    "network-target-unverifiable": (EndpointSetting, ProbeStage),
    **{c: (CipherSuite,) for c in _SUITE_CHECKS},
    # s3
    "s3-public-access-block": (BlockPublicAccess,),
    "s3-public-acl": (PublicGrants,),
    "s3-object-public-acl": (PublicGrants,),
    "s3-object-ownership": (OwnershipSetting,),
    "s3-tls-only": (TlsOnlyPolicy,),
    "s3-public-policy": (PublicPolicy,),
    "s3-cross-account": (ForeignAccounts,),
    "s3-default-encryption": (),
    "s3-kms-for-phi": (EncryptionAlgorithm,),
    "s3-replication-encryption": (ReplicationProblems,),
    "s3-versioning": (VersioningStatus,),
    "s3-mfa-delete": (),
    "s3-object-lock": (RetentionClass, ObjectLockRetention),
    "s3-access-logging": (),
    "s3-lifecycle-retention": (RetentionClass,),
    "s3-object-unencrypted": (ObjectReadMethod, S3Inventory),
    "s3-unverifiable": (UncheckedPart,),
    # permissions
    "perm-grant-outside-baseline": (PermissionGrant,),
    "perm-beyond-role": (PermissionGrant,),
    "perm-unexplained-path": (PermissionPath,),
    "perm-anyone-access": (PermissionPath,),
    "perm-cross-account": (PermissionPath,),
    "perm-account-not-in-roster": (AccountUse,),
    "perm-grant-added": (PermissionChange,),
    "perm-grant-removed": (PermissionChange,),
    "perm-unverifiable": (),
    # logs
    **{c: (LogAnomaly,) for c in _ANOMALY_CHECKS},
    "log-sigma": (RuleMatch,),
    "log-integrity": (IntegrityBreak,),
    "log-unverifiable": (MalformedRecords,),
    # the periodic job
    "assessment-target-not-checked": (),
}


@cache
def _adapter(shape: type) -> TypeAdapter[Any]:
    return TypeAdapter(shape)


def evidence_problems(check_id: str, locations: Sequence[Mapping[str, object]]) -> list[str]:
    """Return why ``locations`` (as built, ``None`` values included) do not fit the check.

    Each location must validate against one of the shapes :data:`CHECK_EVIDENCE` declares for
    ``check_id``; an undeclared check, an undeclared key or a value of the wrong type is a
    problem. An empty list means the evidence fits.
    """
    shapes = CHECK_EVIDENCE.get(check_id)
    if shapes is None:
        return [f"{check_id}: no evidence type is declared in CHECK_EVIDENCE"]
    problems = []
    for i, fields in enumerate(locations):
        errors: list[str] = []
        for shape in shapes:
            try:
                _adapter(shape).validate_python(dict(fields))
                break
            except ValidationError as exc:
                errors.append(f"{shape.__name__}: " + "; ".join(
                    f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
        else:
            problems.append(f"{check_id}: location {i} ({', '.join(fields)}) fits no declared "
                            f"type: " + (" | ".join(errors) or "the check writes no location"))
    return problems


# -- run-level evidence --------------------------------------------------------------------------


class StorageEncryption(TypedDict):
    """Whether the storage under a scanned path is encrypted at rest, and how that was found."""

    target: str
    device: str | None
    encrypted: bool | None
    evidence: str


class Certificate(TypedDict):
    """The leaf certificate of an endpoint, as the reports show it."""

    key: str
    signature: str
    not_after: str
    days_left: int
    trusted: bool | None
    self_signed: bool
    hostname_ok: bool | None


class Hsts(TypedDict):
    """A parsed Strict-Transport-Security header."""

    max_age: int | None
    include_subdomains: bool
    preload: bool


class EndpointDraft(TypedDict):
    """An endpoint's summary while its rules run: everything but the finding counts.

    The keys are in the order the JSON shows them; a TLS endpoint adds ``score`` and
    ``skipped`` after ``notes``, and :class:`EndpointSummary` the counts after those.
    """

    asset: str
    target: str
    kind: str
    policy: str
    state: str
    grade: str | None
    grade_notes: list[str]
    versions: list[str]
    certificate: Certificate | None
    hsts: Hsts | None
    client_auth: str | None
    dicom: str | None
    seconds: float
    alive_after: bool | None
    notes: list[str]
    score: NotRequired[int | None]
    skipped: NotRequired[list[str]]
    #: the asset group (set by the periodic job, once the summary is complete)
    group: NotRequired[str]


class EndpointSummary(EndpointDraft):
    """One network endpoint as the scanner found it (the reports' endpoint table)."""

    findings: dict[str, int]
    unverifiable: int


class BucketSummary(TypedDict):
    """One S3 bucket as the scanner found it (the reports' bucket table)."""

    bucket: str
    asset: str
    region: str | None
    encryption: str
    phi: str | None
    retention: str | None
    public: bool
    failed: list[str]
    unverified: list[str]
    objects_sampled: int
    objects_seen: int
    sample_method: str | None
    group: NotRequired[str]


class LogFile(TypedDict):
    """One log file read by the activity review."""

    source: str
    format: str
    events: int
    malformed: int
    first: str | None
    last: str | None


class AnomalyMark(TypedDict):
    """One anomaly on the reports' timeline."""

    kind: str
    start: str
    end: str
    high: bool


class SigmaRuleReport(TypedDict):
    """One loaded Sigma rule: what it matched, and the fields it names that the logs lack."""

    rule_id: str
    title: str
    kind: str
    source: str
    matches: int
    unknown_fields: list[str]


class SigmaSummary(TypedDict):
    """Which Sigma rules loaded, how many matched or name fields the logs lack, and each one."""

    loaded: int
    matched: int
    with_unknown_fields: int
    rules: list[SigmaRuleReport]


class LogSummary(TypedDict):
    """What one log analysis read and found (the reports' audit-log table and timeline)."""

    files: list[LogFile]
    events: int
    anomalies: dict[str, int]
    timeline: list[AnomalyMark]
    #: the time zone of naive timestamps, and where it came from
    timezone: NotRequired[dict[str, str]]
    #: which Sigma rules loaded and matched
    sigma: NotRequired[SigmaSummary]
    group: NotRequired[str]


class PhiResource(TypedDict):
    """Who can reach one resource that holds PHI."""

    resource: str
    principals: int
    humans: int
    writers: int
    external: list[str]


class RiskyPath(TypedDict):
    """One of the most severe access paths found (the report's picture)."""

    severity: str
    check: str
    principal: str
    resource: str
    path: str


class WatchedReach(TypedDict):
    """A resource a watched (vendor) principal reaches, with which actions."""

    resource: str
    actions: str
    phi: bool


class PermissionSummary(TypedDict):
    """The permission scan's figures (the reports' access section); ``snapshot`` feeds drift.

    ``group`` and ``config_sources`` are set by the periodic job only.
    """

    sources: list[str]
    baseline: str
    previous: str | None
    principals: int
    humans: int
    grants: int
    memberships: int
    resources: int
    phi_resources: list[PhiResource]
    problems: int
    findings: dict[str, int]
    riskiest: list[RiskyPath]
    watched: dict[str, list[WatchedReach]]
    snapshot: dict[str, list[str]]
    group: NotRequired[str]
    config_sources: NotRequired[list[str]]


class RunEvidence(TypedDict, total=False):
    """The run-level evidence of ``RunInfo.evidence``: each scanner writes its own part."""

    storage: list[StorageEncryption]
    endpoints: list[EndpointSummary]
    buckets: list[BucketSummary]
    logs: list[LogSummary]
    permissions: PermissionSummary


def stored_run_evidence(meta: Mapping[str, object]) -> RunEvidence:
    """Return the run-level evidence of a stored run's metadata, narrowed to its types.

    ``meta`` is what the history store gives back (JSON of this or an older version). A list
    part that is not a list of objects, or a permission summary that is not an object, is left
    out; the rows themselves are not validated key by key (an older run may lack a newer key,
    and the templates show what they find).
    """
    run = meta.get("run")
    found = run.get("evidence") if isinstance(run, Mapping) else None
    if not isinstance(found, Mapping):
        return {}
    out: dict[str, object] = {}
    for part in ("storage", "endpoints", "buckets", "logs"):
        rows = found.get(part)
        if isinstance(rows, list):
            out[part] = [r for r in rows if isinstance(r, Mapping)]
    perm = found.get("permissions")
    if isinstance(perm, Mapping):
        out["permissions"] = dict(perm)
    return cast(RunEvidence, out)
