"""Judge what the S3 collector observed (pure: no I/O).

Each bucket check gives a pass, a fail, or "could not be verified": a setting the store does not
support (501, 405), may not be read (403) or did not answer is reported as an ``s3-unverifiable``
finding naming the check, and counted as an error of that check, never as a pass.

Exposure is judged as S3 evaluates it: the account's Block Public Access OR the bucket's, then
ACL grants (void under BucketOwnerEnforced or IgnorePublicAcls), then the policy (void under
RestrictPublicBuckets). Objects go through the archive scanner's own judge (the same DICOM
residual-identifier rules and text PHI detectors), plus their encryption and ACL.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from hipaa_audit.archive.scanner import STAT_FILES, ArchiveRules, holds_phi, judge, promises_dicom
from hipaa_audit.aws import policy as pol
from hipaa_audit.aws.client import Answer
from hipaa_audit.catalog import Catalog, Check
from hipaa_audit.evidence import (
    BlockPublicAccess,
    BucketSummary,
    EncryptionAlgorithm,
    ForeignAccounts,
    ObjectLockRetention,
    ObjectReadMethod,
    OwnershipSetting,
    PublicGrants,
    PublicPolicy,
    ReplicationProblems,
    RetentionClass,
    S3Inventory,
    S3Setting,
    TlsOnlyPolicy,
    UncheckedPart,
    VersioningStatus,
)
from hipaa_audit.model import AssetResult, Location, Severity, Status, outcome_of
from hipaa_audit.redaction import Masker
from hipaa_audit.s3.collect import (
    MAX_READ,
    UNENCRYPTED_STATUS,
    BucketObservation,
    ObjectObservation,
    Sample,
)

RETENTION_TAG = "hipaa-retention"
RETENTION_KINDS = ("audit-log", "documentation")
PHI_TAG = "phi"
UNVERIFIABLE = "s3-unverifiable"
#: Stat keys of the S3 scanner.
STAT_BUCKETS = "buckets"
STAT_OBJECTS = "objects"
STAT_LISTED = "objects_listed"
STAT_LIST_CALLS = "list_calls"
STAT_INVENTORY = "objects_in_inventory"
YEAR_DAYS = 365.25


@dataclass(frozen=True, slots=True)
class Scope:
    """What the configuration says about the buckets (who is trusted, what must be kept)."""

    trusted_accounts: frozenset[str] = frozenset()
    retention_buckets: frozenset[str] = frozenset()
    phi_buckets: frozenset[str] = frozenset()


@dataclass(slots=True)
class BucketContext:
    """Facts about one bucket that come from outside its own settings."""

    aws: bool
    phi: str | None = None
    retention: str | None = None
    log_target: bool = False


def context_for(obs: BucketObservation, scope: Scope, *, aws: bool,
                log_targets: frozenset[str]) -> BucketContext:
    """Build a bucket's context from its tags, the configuration and the other buckets."""
    tags = obs.tags
    phi = None
    if obs.name in scope.phi_buckets:
        phi = "named in the configuration"
    elif tags.get(PHI_TAG, "").lower() in ("true", "yes", "1"):
        phi = "tagged phi=true"
    retention = None
    if obs.name in scope.retention_buckets:
        retention = "audit-log"
    tag = tags.get(RETENTION_TAG, "").lower()
    if tag in RETENTION_KINDS:
        retention = tag
    return BucketContext(aws, phi, retention, obs.name in log_targets)


def log_targets(observations: list[BucketObservation]) -> frozenset[str]:
    """The buckets that receive another bucket's server access logs."""
    out = set()
    for obs in observations:
        target = obs.data("logging").get("LoggingEnabled", {}).get("TargetBucket")
        if target and target != obs.name:
            out.add(str(target))
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class S3Rules:
    """The checks of the S3 scanner and the archive rules its objects go through."""

    checks: dict[str, Check]
    archive: ArchiveRules
    retention_days: int = 2192

    @classmethod
    def build(cls, catalog: Catalog, masker: Masker) -> S3Rules:
        """Assemble the rules from the catalog."""
        checks = {c.id: c for c in catalog.for_scanner("s3")}
        days = int(checks["s3-object-lock"].params.get("retention_days", 2192))
        return cls(checks, ArchiveRules.build(catalog, masker), days)


Verdict = Literal["pass", "fail", "error"]


@dataclass(slots=True)
class Outcome:
    """One check's verdict on one asset."""

    verdict: Verdict
    message: str = ""
    severity: Severity | None = None
    #: what a failure saw (its finding's location); None: the finding has no location
    where: S3Setting | None = None


def _pass() -> Outcome:
    return Outcome("pass")


def _fail(message: str, severity: Severity | None = None,
          where: S3Setting | None = None) -> Outcome:
    return Outcome("fail", message, severity, where)


def _error(answer: Answer, what: str) -> Outcome:
    return Outcome("error", answer.reason(what) + ".")


def _record(result: AssetResult, rules: S3Rules, check_id: str, outcome: Outcome | None) -> None:
    """Add one outcome to the result: coverage always, a finding unless it passed."""
    if outcome is None:
        return
    check = rules.checks[check_id]
    result.coverage.record(check_id, outcome.verdict)
    if outcome.verdict == "fail":
        locations = (Location.of_evidence(outcome.where),) if outcome.where is not None else ()
        result.findings.append(check.finding(result.asset, outcome.message,
                                             severity=outcome.severity, locations=locations))
    elif outcome.verdict == "error":
        result.findings.append(rules.checks[UNVERIFIABLE].finding(
            result.asset, f"{check.title}: not verified. {outcome.message}",
            status=Status.ERROR, key=check_id,
            locations=(Location.of_evidence(UncheckedPart(check=check_id)),)))


# -- exposure: Block Public Access, ACLs, policies ----------------------------------------------

def _flags(answer: Answer | None, key: str) -> dict[str, bool] | None:
    """Known BPA flags: ``None`` when the answer leaves them unknown."""
    if answer is None or answer.state == "absent":
        return pol.bpa_flags(None)
    if answer.ok:
        return pol.bpa_flags(answer.data.get(key))
    return None


def effective_bpa(obs: BucketObservation) -> dict[str, bool | None]:
    """Each Block Public Access flag as S3 applies it: account OR bucket (``None``: unknown)."""
    bucket = _flags(obs.answers.get("bpa"), "PublicAccessBlockConfiguration")
    account = _flags(obs.account_bpa, "PublicAccessBlockConfiguration")
    out: dict[str, bool | None] = {}
    for flag in pol.BPA_FLAGS:
        known = [f[flag] for f in (bucket, account) if f is not None]
        if any(known):
            out[flag] = True
        elif len(known) == 2:
            out[flag] = False
        else:
            out[flag] = None
    return out


def _bpa(obs: BucketObservation) -> Outcome:
    flags = effective_bpa(obs)
    off = [f for f, v in flags.items() if v is False]
    unknown = [f for f, v in flags.items() if v is None]
    if off:
        where = "bucket" if obs.account_bpa is None else "bucket or account"
        return _fail(f"Block Public Access is off at {where} level for: {', '.join(off)}.",
                     where=BlockPublicAccess(off=off, unknown=unknown or None))
    if unknown:
        answers = [a for a in (obs.answers.get("bpa"), obs.account_bpa)
                   if a is not None and not a.ok and a.state != "absent"]
        return _error(answers[0], "Block Public Access")
    return _pass()


def _ownership(obs: BucketObservation) -> str | None:
    rules = obs.data("ownership").get("OwnershipControls", {}).get("Rules", [])
    return str(rules[0].get("ObjectOwnership")) if rules else None


def acls_disabled(obs: BucketObservation) -> bool:
    """True when Object Ownership is BucketOwnerEnforced (ACLs have no effect)."""
    return _ownership(obs) == "BucketOwnerEnforced"


def _acl(obs: BucketObservation) -> Outcome:
    answer = obs.answers["acl"]
    if not answer.ok:
        return _error(answer, "the bucket ACL")
    grants = pol.public_grants(answer.data.get("Grants", []))
    if not grants or acls_disabled(obs):
        return _pass()
    ignore = effective_bpa(obs)["IgnorePublicAcls"]
    if ignore:
        return _pass()  # IgnorePublicAcls voids it
    note = "" if ignore is False else " (whether IgnorePublicAcls voids it could not be read)"
    return _fail(f"The bucket ACL grants {'; '.join(grants)}{note}.",
                 where=PublicGrants(grants=grants))


def _object_ownership(obs: BucketObservation) -> Outcome:
    answer = obs.answers["ownership"]
    if answer.ok or answer.state == "absent":
        value = _ownership(obs)
        if value == "BucketOwnerEnforced":
            return _pass()
        return _fail(f"Object Ownership is {value or 'not set (ObjectWriter)'}: object ACLs are "
                     "still honoured.", where=OwnershipSetting(ownership=value or "unset"))
    return _error(answer, "Object Ownership")


def _policy_doc(obs: BucketObservation) -> dict[str, Any] | Outcome:
    """The parsed bucket policy (``{}``: no policy), or the outcome saying why it is unknown."""
    answer = obs.answers["policy"]
    if answer.state == "absent":
        return {}
    if not answer.ok:
        return _error(answer, "the bucket policy")
    try:
        return pol.load(str(answer.data.get("Policy", "")))
    except ValueError:
        return Outcome("error", "The bucket policy is not valid JSON; it was not judged.")


def _tls_only(obs: BucketObservation) -> Outcome:
    doc = _policy_doc(obs)
    if isinstance(doc, Outcome):
        return doc
    if not doc:
        return _fail("The bucket has no policy, so nothing denies plain-HTTP requests.")
    verdict = pol.tls_only(doc, obs.name)
    if verdict.enforced:
        return _pass()
    return _fail(f"The bucket policy does not deny plain-HTTP requests: {verdict.detail}.",
                 where=TlsOnlyPolicy(min_tls=verdict.min_tls))


def _public_policy(obs: BucketObservation) -> Outcome:
    doc = _policy_doc(obs)
    if isinstance(doc, Outcome):
        return doc
    open_to_all = pol.public_statements(doc)
    if not open_to_all:
        return _pass()
    restrict = effective_bpa(obs)["RestrictPublicBuckets"]
    if restrict:
        return _pass()  # RestrictPublicBuckets voids it
    status = obs.data("policy_status").get("PolicyStatus", {}).get("IsPublic")
    store = {True: "the store also reports it public", False: "the store reports it not public",
             None: "the store's policy status could not be read"}[status]
    return _fail(f"The bucket policy allows everyone with no limiting condition "
                 f"({'; '.join(open_to_all)}); {store}.",
                 where=PublicPolicy(statements=open_to_all, store_says_public=status))


def _cross_account(obs: BucketObservation, scope: Scope) -> Outcome:
    doc = _policy_doc(obs)
    if isinstance(doc, Outcome):
        return doc
    foreign = {acct: actions for acct, actions in pol.principal_accounts(doc).items()
               if acct != obs.account_id and acct not in scope.trusted_accounts}
    unresolved = pol.unresolved_principals(doc)
    who = (f" It also names {len(unresolved)} principal(s) that cannot be resolved: "
           f"{'; '.join(unresolved)}." if unresolved else "")
    if foreign:
        listed = "; ".join(f"account {a}: {', '.join(acts)}"
                           for a, acts in sorted(foreign.items()))
        return _fail(f"The bucket policy grants access to accounts that are not trusted "
                     f"({listed}).{who}", where=ForeignAccounts(
                         accounts=sorted(foreign), unresolved=unresolved or None))
    if unresolved:
        return Outcome("error", f"The bucket policy names {len(unresolved)} principal(s) that "
                       f"cannot be resolved, so who it lets in is unknown: "
                       f"{'; '.join(unresolved)}.")
    return _pass()


# -- encryption ---------------------------------------------------------------------------------

def _sse_default(obs: BucketObservation) -> dict[str, Any]:
    rules = obs.data("encryption").get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
    if not rules:
        return {}
    rule = rules[0]
    default = rule.get("ApplyServerSideEncryptionByDefault", {})
    return {"algorithm": default.get("SSEAlgorithm"), "kms_key": default.get("KMSMasterKeyID"),
            "bucket_key": rule.get("BucketKeyEnabled")}


def _default_encryption(obs: BucketObservation) -> Outcome:
    answer = obs.answers["encryption"]
    if answer.state == "absent":
        return _fail("The bucket has no default encryption: objects uploaded without an "
                     "encryption header are stored in clear.")
    if not answer.ok:
        return _error(answer, "the default encryption")
    sse = _sse_default(obs)
    if not sse.get("algorithm"):
        return _fail("The bucket's encryption configuration names no algorithm.")
    return _pass()


def _kms_for_phi(obs: BucketObservation, ctx: BucketContext) -> Outcome | None:
    if ctx.phi is None or not obs.answers["encryption"].ok:
        return None
    algorithm = _sse_default(obs).get("algorithm")
    if algorithm == "AES256":
        return _fail(f"The bucket holds PHI ({ctx.phi}) and is encrypted with S3-managed keys "
                     "(SSE-S3, AES256), not a KMS key.",
                     where=EncryptionAlgorithm(algorithm=algorithm))
    return _pass()


def _replication(obs: BucketObservation) -> Outcome | None:
    answer = obs.answers["replication"]
    if answer.state == "absent":
        return None
    if not answer.ok:
        return _error(answer, "the replication configuration")
    kms_source = str(_sse_default(obs).get("algorithm", "")).startswith("aws:kms")
    problems: list[str] = []
    for rule in answer.data.get("ReplicationConfiguration", {}).get("Rules", []):
        if rule.get("Status") != "Enabled":
            continue
        dest_arn = str(rule.get("Destination", {}).get("Bucket", ""))
        dest = dest_arn.rsplit(":", 1)[-1]
        dest_answer = obs.destinations.get(dest)
        rid = rule.get("ID") or dest
        if dest_answer is not None and dest_answer.state == "absent":
            problems.append(f"rule {rid}: the destination {dest} has no default encryption")
        elif dest_answer is not None and not dest_answer.ok:
            return _error(dest_answer, f"the encryption of the replication destination {dest}")
        if kms_source:
            selected = (rule.get("SourceSelectionCriteria", {})
                        .get("SseKmsEncryptedObjects", {}).get("Status") == "Enabled")
            replica_key = (rule.get("Destination", {}).get("EncryptionConfiguration", {})
                           .get("ReplicaKmsKeyID"))
            if not selected or not replica_key:
                problems.append(f"rule {rid}: the source uses SSE-KMS but the rule does not "
                                "select KMS-encrypted objects with a replica KMS key")
    if problems:
        return _fail("Replication does not keep the copies encrypted: " + "; ".join(problems)
                     + ".", where=ReplicationProblems(rules=len(problems)))
    return _pass()


# -- resilience and retention -------------------------------------------------------------------

def _versioning_setting(obs: BucketObservation, key: str, what: str) -> Outcome | str | None:
    """A setting of the bucket's versioning (``Status``, ``MFADelete``), when not ``Enabled``.

    Else the outcome is already known: an error when it could not be read, a pass when enabled.
    """
    answer = obs.answers["versioning"]
    if not answer.ok:
        return _error(answer, what)
    value: str | None = answer.data.get(key)
    return _pass() if value == "Enabled" else value


def _versioning(obs: BucketObservation, ctx: BucketContext) -> Outcome:
    status = _versioning_setting(obs, "Status", "the versioning state")
    if isinstance(status, Outcome):
        return status
    important = ctx.phi is not None or ctx.retention is not None
    return _fail(f"Versioning is {'suspended' if status == 'Suspended' else 'not enabled'}: an "
                 "overwrite or delete destroys the only copy.",
                 None if important else Severity.LOW,
                 where=VersioningStatus(status=status or "never enabled"))


def _mfa_delete(obs: BucketObservation, ctx: BucketContext) -> Outcome | None:
    if ctx.retention is None:
        return None
    value = _versioning_setting(obs, "MFADelete", "the MFA delete state")
    if isinstance(value, Outcome):
        return value
    if value is None and not ctx.aws:
        return Outcome("error", "MFA delete: not reported by this store (it may accept the "
                       "setting without enforcing it); it cannot be verified here and is not "
                       "counted as compliant.")
    return _fail(f"MFA delete is not enabled on this {ctx.retention} bucket.")


def _object_lock(obs: BucketObservation, ctx: BucketContext, days: int) -> Outcome | None:
    if ctx.retention is None:
        return None
    answer = obs.answers["lock"]
    kind = f"This {ctx.retention} bucket"
    if answer.state == "absent":
        return _fail(f"{kind} has no Object Lock: its records can be deleted or overwritten "
                     "before six years.", where=RetentionClass(retention=ctx.retention))
    if not answer.ok:
        return _error(answer, "the Object Lock configuration")
    config = answer.data.get("ObjectLockConfiguration", {})
    problems = []
    if config.get("ObjectLockEnabled") != "Enabled":
        problems.append("Object Lock is not enabled")
    default = config.get("Rule", {}).get("DefaultRetention", {})
    if not default:
        problems.append("there is no default retention")
    else:
        mode = default.get("Mode")
        if mode != "COMPLIANCE":
            problems.append(f"the retention mode is {mode} (bypassable), not COMPLIANCE")
        years, period = int(default.get("Years") or 0), int(default.get("Days") or 0)
        period_days = years * YEAR_DAYS if years else period
        if period_days < days - 1:
            shown = f"{years} year(s)" if years else f"{period} day(s)"
            problems.append(f"the default retention is {shown}, under six years")
    if problems:
        return _fail(f"{kind}: " + "; ".join(problems) + ".", where=ObjectLockRetention(
            retention=ctx.retention, mode=default.get("Mode"),
            years=default.get("Years") or None, days=default.get("Days") or None))
    return _pass()


def _access_logging(obs: BucketObservation, ctx: BucketContext) -> Outcome | None:
    if ctx.log_target:
        return None  # the bucket that receives the logs is not expected to log itself
    answer = obs.answers["logging"]
    if not answer.ok:
        return _error(answer, "server access logging")
    target = answer.data.get("LoggingEnabled", {}).get("TargetBucket")
    if target:
        return _pass()
    return _fail("Server access logging is off: reads and writes of this bucket are not "
                 "recorded by the store.", None if ctx.phi else Severity.LOW)


def _lifecycle(obs: BucketObservation, ctx: BucketContext, days: int,
               today: dt.date) -> Outcome | None:
    if ctx.retention is None:
        return None
    answer = obs.answers["lifecycle"]
    if answer.state == "absent":
        return _pass()
    if not answer.ok:
        return _error(answer, "the lifecycle configuration")
    problems = []
    for rule in answer.data.get("Rules", []):
        if rule.get("Status") != "Enabled":
            continue
        rid = rule.get("ID") or "unnamed rule"
        expiration = rule.get("Expiration", {})
        if expiration.get("Days") is not None and int(expiration["Days"]) < days:
            problems.append(f"{rid} expires objects after {expiration['Days']} days")
        when = expiration.get("Date")
        if isinstance(when, dt.datetime | dt.date):
            date = when.date() if isinstance(when, dt.datetime) else when
            if date < today + dt.timedelta(days=days):
                problems.append(f"{rid} expires objects on {date.isoformat()}")
        noncurrent = rule.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays")
        if noncurrent is not None and int(noncurrent) < days:
            problems.append(f"{rid} deletes noncurrent versions after {noncurrent} days")
    if problems:
        return _fail(f"Lifecycle rules delete records of this {ctx.retention} bucket before six "
                     "years: " + "; ".join(problems) + ".",
                     where=RetentionClass(retention=ctx.retention))
    return _pass()


def judge_bucket(obs: BucketObservation, ctx: BucketContext, scope: Scope, rules: S3Rules,
                 today: dt.date | None = None) -> AssetResult:
    """Judge every bucket check on one bucket."""
    result = AssetResult(f"s3://{obs.name}", stats={STAT_BUCKETS: 1})
    if not obs.exists.ok and not obs.answers:
        what = "the bucket" if obs.exists.state != "absent" else "the bucket (it does not exist)"
        message = (f"The bucket could not be examined. "
                   f"{obs.exists.reason(what) if obs.exists.state != 'absent' else what}.")
        result.findings.append(rules.checks[UNVERIFIABLE].finding(
            result.asset, message, status=Status.ERROR))
        result.coverage.record(UNVERIFIABLE, "error")
        return result
    tags = obs.answers.get("tagging")
    if tags is not None and not tags.ok and tags.state != "absent":
        result.findings.append(rules.checks[UNVERIFIABLE].finding(
            result.asset, f"{tags.reason('The bucket tags')}. Whether it holds PHI or audit "
            "records (tags phi, hipaa-retention) is known only from the configuration.",
            status=Status.ERROR, key="tags",
            locations=(Location.of_evidence(UncheckedPart(check="tags")),)))
        result.coverage.record(UNVERIFIABLE, "error")
    days = rules.retention_days
    for check_id, outcome in (
        ("s3-default-encryption", _default_encryption(obs)),
        ("s3-kms-for-phi", _kms_for_phi(obs, ctx)),
        ("s3-tls-only", _tls_only(obs)),
        ("s3-public-access-block", _bpa(obs)),
        ("s3-public-acl", _acl(obs)),
        ("s3-object-ownership", _object_ownership(obs)),
        ("s3-public-policy", _public_policy(obs)),
        ("s3-cross-account", _cross_account(obs, scope)),
        ("s3-versioning", _versioning(obs, ctx)),
        ("s3-mfa-delete", _mfa_delete(obs, ctx)),
        ("s3-object-lock", _object_lock(obs, ctx, days)),
        ("s3-access-logging", _access_logging(obs, ctx)),
        ("s3-lifecycle-retention", _lifecycle(obs, ctx, days, today or dt.date.today())),
        ("s3-replication-encryption", _replication(obs)),
    ):
        _record(result, rules, check_id, outcome)
    return result


def summarize_bucket(obs: BucketObservation, ctx: BucketContext, result: AssetResult,
                     sample: Sample | None) -> BucketSummary:
    """The bucket's row in the run's evidence (no object keys, no PHI)."""
    failed = sorted({f.check_id for f in result.findings if f.status is Status.FAIL})
    errors = sorted({f.locations[0].text("check") for f in result.findings
                     if f.status is Status.ERROR and f.locations})
    sse = _sse_default(obs)
    return {
        "bucket": obs.name, "asset": result.asset, "region": obs.region,
        "encryption": sse.get("algorithm") or ("none" if obs.answers.get("encryption")
                                               and obs.answers["encryption"].state == "absent"
                                               else "unknown"),
        "phi": ctx.phi, "retention": ctx.retention,
        "public": bool({"s3-public-acl", "s3-public-policy"} & set(failed)),
        "failed": failed, "unverified": errors,
        "objects_sampled": len(sample.keys) if sample else 0,
        "objects_seen": sample.seen if sample else 0,
        "sample_method": sample.method if sample else None,
    }


# -- objects ------------------------------------------------------------------------------------

def judge_sample(obs: BucketObservation, sample: Sample, rules: S3Rules) -> AssetResult:
    """Findings about the bucket's objects as a whole: the inventory, or a failed listing."""
    result = AssetResult(f"s3://{obs.name}", stats={STAT_LISTED: sample.seen,
                                                     STAT_LIST_CALLS: sample.list_calls})
    if sample.problem is not None:
        _record(result, rules, "s3-object-unencrypted",
                _error(sample.problem, "the object listing (object checks)"))
    inv = obs.inventory
    if inv is not None and inv.problem is not None:
        result.findings.append(rules.checks[UNVERIFIABLE].finding(
            result.asset, f"The S3 Inventory report could not be used: {inv.problem}. The objects "
            "were listed and sampled instead.", status=Status.ERROR, key="inventory"))
        result.coverage.record(UNVERIFIABLE, "error")
    if sample.method == "inventory" and inv is not None:
        result.stats[STAT_INVENTORY] = inv.total
        bare = inv.by_status.get(UNENCRYPTED_STATUS, 0)
        result.coverage.record("s3-object-unencrypted", outcome_of(failed=bare > 0))
        if bare:
            result.findings.append(rules.checks["s3-object-unencrypted"].finding(
                result.asset,
                f"The S3 Inventory report of {inv.report.rsplit('/', 2)[-2]} lists {bare} of "
                f"{inv.total} object(s) stored without server-side encryption (NOT-SSE).",
                key="inventory",
                locations=(Location.of_evidence(S3Inventory(
                    method="inventory", report=inv.report,
                    by_status=dict(sorted(inv.by_status.items())),
                    sample_keys=inv.unencrypted)),)))
    return result


def judge_object(item: ObjectObservation, obs: BucketObservation, rules: S3Rules, *,
                 inventory_checked: bool) -> AssetResult:
    """Judge one sampled object: its content (archive rules), its encryption and its ACL."""
    asset = f"s3://{item.bucket}/{item.key}"
    if not item.head.ok:
        result = AssetResult(asset, stats={STAT_OBJECTS: 1})
        _record(result, rules, "s3-object-unencrypted", _error(item.head, "the object"))
        return result
    if item.body is not None and item.body.ok:
        header = item.header
        cut = item.header_cut and header is not None
        if cut and header is not None:
            header.fault = None
        result = judge(header, asset, rules.archive, named_dicom=promises_dicom(item.key),
                       head=item.data)
        if cut:
            result.findings.append(rules.archive.problem(
                asset, f"the DICOM header runs past the first {MAX_READ // 1024} KiB read; the "
                "elements in them were checked"))
            result.coverage.record(rules.archive.unverifiable.id, "error")
    else:
        result = AssetResult(asset)
        if item.body is not None:  # its PHI checks could not run
            result.findings.append(rules.checks[UNVERIFIABLE].finding(
                asset, f"The object's content was not checked for PHI: "
                f"{item.body.reason('reading its first bytes')}.", status=Status.ERROR,
                key="content",
                locations=(Location.of_evidence(UncheckedPart(check=rules.archive.unverifiable.id)),)))
            result.coverage.record(rules.archive.unverifiable.id, "error")
    result.stats.pop(STAT_FILES, None)
    result.stats[STAT_OBJECTS] = 1
    phi = holds_phi([result])
    if not inventory_checked:
        _record(result, rules, "s3-object-unencrypted", _object_encryption(item, phi))
    if item.acl is not None:
        _record(result, rules, "s3-object-public-acl", _object_acl(item, obs))
    return result


def _object_encryption(item: ObjectObservation, phi: bool) -> Outcome:
    sse = item.head.data.get("ServerSideEncryption") or (
        "SSE-C" if item.head.data.get("SSECustomerAlgorithm") else None)
    if sse:
        return _pass()
    return _fail("The object is stored without server-side encryption"
                 + (" and holds PHI: unsecured PHI under 164.402." if phi else "."),
                 Severity.HIGH if phi else None, where=ObjectReadMethod(method="HeadObject"))


def _object_acl(item: ObjectObservation, obs: BucketObservation) -> Outcome:
    assert item.acl is not None
    if not item.acl.ok:
        return _error(item.acl, "the object ACL")
    grants = pol.public_grants(item.acl.data.get("Grants", []))
    if not grants:
        return _pass()
    if effective_bpa(obs)["IgnorePublicAcls"]:
        return _pass()  # IgnorePublicAcls voids it
    return _fail(f"The object ACL grants {'; '.join(grants)}.", where=PublicGrants(grants=grants))
