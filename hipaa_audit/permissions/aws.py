"""Collect AWS IAM and S3 access as neutral facts (principals, memberships, grants, resources).

:func:`collect_aws` reads, through the read-only :class:`~hipaa_audit.aws.client.Connection`
(List, Get and Head calls only, plus STS GetCallerIdentity), who may reach which bucket:

- **IAM**: ``iam:GetAccountAuthorizationDetails`` (boto3's paginator) gives the users (path,
  tags, groups, attached and inline policies), groups, roles (trust policy, attached and inline
  policies) and the managed policies (default version). ``iam:ListUsers`` adds each user's
  ``PasswordLastUsed`` (which the details call does not carry; silently skipped when denied). A
  managed policy attached but absent from the details is read with ``GetPolicy`` +
  ``GetPolicyVersion``. When a store answers the details call "not supported", the same facts are
  read with ``ListUsers``/``ListGroupsForUser``/``ListAttachedUserPolicies``/``ListUserPolicies``
  + ``GetUserPolicy``/``ListUserTags``, ``ListGroups``/..., ``ListRoles``/... instead (the users
  listed there carry ``PasswordLastUsed``: they are not listed twice; moto 5.2.5 supports the
  details call, so this fallback is only exercised directly by the tests). A denied or failed
  details call becomes a :class:`Problem` and S3 is still read. Entries of an IAM answer without
  the expected keys are skipped and reported as one Problem ("an IAM answer had an unexpected
  shape"), never an exception.
- **Own account**: STS GetCallerIdentity, or else the account of the ARNs in the IAM answer; it
  goes to :attr:`Facts.own_accounts` (empty when neither is known).
- **S3**: ``ListBuckets`` (restricted to ``buckets`` when given; a name given but not listed is a
  Problem), then per bucket the bucket policy, the ACL, the ownership controls and the bucket
  Public Access Block; the account Public Access Block via s3control only on AWS semantics
  (``access.aws``). Every answer that is denied, unsupported or failed becomes a Problem naming
  the operation, never an exception. No object is listed or read: no PHI is touched.

Translation rules (kept simple on purpose; the analysis shows conditions, it does not evaluate
them; the action and resource tables are in :mod:`hipaa_audit.aws.iam_policy`):

- Actions are matched case-insensitively (``fnmatch``) against :data:`S3_ACTIONS`, a table of
  concrete S3 actions, each mapped to one normalised action (``list``, ``read``, ``write``,
  ``delete``, ``admin``) and to the ARN level it applies to (:func:`action_level`): the
  *bucket* (``ListBucket*``, ``GetBucket*``/``PutBucket*``/``DeleteBucket*``, the bucket
  configurations such as ``Put/GetEncryptionConfiguration`` and
  ``Put/GetLifecycleConfiguration``), its *objects* (``*Object*``, ``AbortMultipartUpload``,
  ``ListMultipartUploadParts``, ``BypassGovernanceRetention``) or the *account*
  (``PutAccountPublicAccessBlock``). Only reads of object content (``GetObject``,
  ``GetObjectVersion``, ``GetObject(Version)Torrent``, ``GetObjectVersionForReplication``) are
  ``read``: reads of metadata and configuration (``GetBucket*``, ``GetObjectAcl``,
  ``GetObjectTagging``, ``GetObjectAttributes``, ``GetEncryptionConfiguration`` ...,
  :data:`METADATA_READS`) read no PHI and grant nothing, like the other S3 actions outside the
  table (``PutBucketTagging``, ``PutBucketCORS``, ``ListAllMyBuckets`` ...).
- IAM: ``iam:*`` and the privilege-escalation actions of :data:`IAM_ESCALATION`
  (``AttachUser/Group/RolePolicy``, ``PutUser/Group/RolePolicy``, ``CreatePolicyVersion``,
  ``SetDefaultPolicyVersion``, ``AddUserToGroup``, ``UpdateAssumeRolePolicy``,
  ``CreateAccessKey``, ``PassRole``) make the principal ``admin`` of every listed bucket when the
  statement's resources cover IAM (``*``, an ``arn:aws:iam:`` or ``arn:*`` resource, or a
  ``NotResource``): whoever can grant themselves anything can reach everything. Other IAM
  actions count for nothing. ``CreateAccessKey`` on resources that all name the caller
  (``${aws:username}``) is key rotation, not escalation, and does not count. An Allow with
  ``NotAction`` grants every table action not listed (the IAM ones too) and carries the
  condition text ``NotAction``.
- Resources (:func:`resource_scopes`): ``arn:aws:s3:::B`` → ``s3://B`` at the bucket level only;
  ``arn:aws:s3:::B/*`` → ``s3://B`` at the object level only; ``arn:aws:s3:::B/P/*`` →
  ``s3://B/P`` (a prefix, object level); a key with a wildcard inside a segment is cut at the
  last ``/`` before the wildcard (``B/pub*`` → ``s3://B``, ``B/in/x*`` → ``s3://B/in``); a key
  without wildcard names that object; ``*`` → every listed bucket at every level; a wildcard in
  the bucket part also matches ``/`` (as IAM does), so it reaches the objects of every bucket
  its literal head matches. An Allow grants only the actions of the levels its ARN reaches. A
  bucket named explicitly is kept even if not listed (unless ``buckets`` restricts the scan).
  ``NotResource`` → every listed bucket, per level: the bucket level unless a pattern matches
  the bucket ARN, the object level unless a pattern covers all of its objects.
- Denies: only *unconditional* Deny statements (no ``Condition``, ``NotAction``,
  ``NotResource`` or ``NotPrincipal``) are applied, and only to the grants of the same principal
  from its own policies (a group's Deny is not pushed onto its members' own grants; a bucket
  policy's Deny applies to the same principal or, for ``*``, to every principal of that policy;
  a Deny naming one user or role of another account applies only to the grants naming that same
  ARN). A Deny subtracts an action only at the level its ARN *certainly* covers: a bucket ARN
  removes bucket-level actions of that bucket; ``B/*`` or ``B/P/*`` (or ``B/P*``) removes
  object-level actions on those objects (a grant on ``B/P/Q`` too, a whole-bucket grant not);
  a single object key only a grant on that same key; ``*`` everything. IAM escalation is removed
  only by a Deny on ``*`` or an account-wide IAM ARN (``arn:aws:iam::*:*``,
  ``arn:aws:iam::ACCOUNT:*`` of the own account). The result can only overstate access, never
  hide it.
- Principals in bucket and trust policies are read by
  :func:`hipaa_audit.aws.policy.read_principals`, the reader ``scan s3`` uses: ``*`` →
  :data:`ANYONE`, but ``*`` confined by a condition on the caller or its network (e.g.
  ``aws:PrincipalOrgID``, ``aws:SourceVpce``; see :func:`hipaa_audit.aws.policy.confinement`)
  → ``aws:confined/CONDITIONS`` (kind ``account``; not public, judged against the baseline like
  any other principal); an account id or
  ``arn:aws:iam::ID:root`` → ``aws:account/ID`` (own account too); a user or role ARN of the own
  account (or an STS assumed-role ARN) → ``aws:user/NAME``/``aws:role/NAME``; a user or role ARN
  of any other account → ``aws:account/ID``, the ARN kept as evidence in the grant's source
  (``s3:bucket-policy (ARN)``, ``iam:trust-policy:ROLE (ARN)``), not as a condition. When the
  own account is unknown (no STS answer, no account in the IAM answer), such an ARN maps to
  ``aws:account/ID`` unless IAM listed that very user or role. ``Service`` →
  ``aws:service/NAME``; ``CanonicalUser`` → ``aws:account/canonical:ID``; ``NotPrincipal`` in an
  Allow → ANYONE with the condition text ``NotPrincipal``. Unresolvable principals
  (``${...}`` placeholders, the ``AROA...``/``AIDA...`` unique ids IAM leaves for deleted roles
  and users, ``Federated``, unrecognised forms) become Problems (unverifiable).
- ACLs: AllUsers → ANYONE, AuthenticatedUsers → ``aws:account/*``, LogDelivery and the owner
  are skipped, another canonical user → ``aws:account/canonical:ID``; READ → list, WRITE →
  write + delete, READ_ACP → nothing (it reads the ACL, not PHI), WRITE_ACP → admin,
  FULL_CONTROL → all five.
- Block Public Access and ownership: ``IgnorePublicAcls`` (bucket or account level) drops the ACL
  grants to ANYONE and ``aws:account/*``; ``RestrictPublicBuckets`` (either level), *when the
  bucket policy is public* (an Allow to ``*`` without a confining condition, as S3 judges it),
  drops the policy grants to ANYONE and to other accounts (AWS then lets only the owner account
  and AWS services in; a non-public policy is not restricted, so its cross-account grants stay).
  ``BlockPublicAcls``/``BlockPublicPolicy`` only refuse future changes and drop nothing.
  ``BucketOwnerEnforced`` ownership disables ACLs: every ACL grant is dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hipaa_audit.aws.client import Access, Answer, Connection, Observer, call
from hipaa_audit.aws.iam_details import (
    _account_of,
    _details,
    _last_used,
    _last_used_of,
    details_by_listing,
)
from hipaa_audit.aws.iam_policy import (
    _EVERYWHERE,
    _IAM,
    IAM,
    OBJECT,
    Scope,
    _allowed_iam,
    _denies_all_iam,
    _matches,
    action_level,
    bucket_of,
    concrete_actions,
    normalise,
    parse_document,
    resource_scopes,
)
from hipaa_audit.aws.policy import (
    ALL_USERS,
    AUTHENTICATED_USERS,
    PolicyPrincipal,
    _list,
    bpa_flags,
    condition_texts,
    load,
    public_statements,
    read_principals,
    statements,
)
from hipaa_audit.permissions.model import (
    ACTIONS,
    ANYONE,
    Facts,
    Grant,
    Membership,
    Principal,
    Problem,
    Resource,
)
from hipaa_audit.s3.collect import all_buckets, bucket_region

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

SOURCE = "aws"


_ASSUME = ("sts:assumerole", "sts:assumerolewithsaml", "sts:assumerolewithwebidentity")


#: READ_ACP reads the ACL itself (metadata, no PHI): it grants nothing.
_ACL_ACTIONS = {"READ": ("list",), "WRITE": ("write", "delete"), "READ_ACP": (),
                "WRITE_ACP": ("admin",), "FULL_CONTROL": ACTIONS}
_LOG_DELIVERY = "http://acs.amazonaws.com/groups/s3/LogDelivery"


def _principal(pid: str, kind: Any, name: str, human: bool = False) -> Principal:
    return Principal(pid, kind, name, SOURCE, human=human)


def _anyone() -> Principal:
    return _principal(ANYONE, "anyone", "anyone")


def _account(account: str) -> Principal:
    return _principal(f"aws:account/{account}", "account", account)


def _user_from_arn(path_name: str) -> Principal:
    name = path_name.rsplit("/", 1)[-1]
    return _principal(f"aws:user/{name}", "user", name,
                      human="/service/" not in f"/{path_name}")


@dataclass(frozen=True, slots=True)
class Who:
    """One principal named by a policy statement.

    ``extra`` are condition texts the mapping adds (``NotPrincipal``); ``via`` is the ARN of a
    user or role of another account, mapped to its account and kept as evidence.
    """

    principal: Principal
    extra: tuple[str, ...] = ()
    via: str | None = None


def policy_principals(statement: dict[str, Any], own_account: str | None, *,
                      known: Collection[str] = ()) -> tuple[list[Who], list[str]]:
    """Map the ``Principal`` of a bucket or trust policy statement to principals.

    The statement is read by :func:`hipaa_audit.aws.policy.read_principals`, the reader ``scan
    s3`` uses too. ``known`` are the ids (``aws:user/NAME``, ``aws:role/NAME``) IAM listed in
    the own account: when ``own_account`` is unknown, only an ARN naming one of them maps to a
    user or role. Returns the principals and the values that could not be resolved
    (placeholders, unique ids of deleted users or roles, ``Federated``, unknown forms) as
    ``"Key: value (why)"`` texts for a Problem.
    """
    found: list[Who] = []
    unmapped: list[str] = []
    for p in read_principals(statement):
        who = _map_principal(p, own_account, known)
        if who is None:
            if p.text() not in unmapped:
                unmapped.append(p.text())
        elif who not in found:
            found.append(who)
    return found, unmapped


def _confined(texts: tuple[str, ...]) -> Principal:
    """Anyone the conditions admit (``Principal: *`` confined to an organisation, a network...)."""
    joined = "; ".join(texts)
    return _principal(f"aws:confined/{joined}", "account", f"anyone if {joined}")


def _map_principal(p: PolicyPrincipal, own_account: str | None,
                   known: Collection[str] = ()) -> Who | None:
    extra = ("NotPrincipal",) if p.kind == "NotPrincipal" else ()
    if p.what == "anyone":
        return Who(_anyone(), extra)
    if p.what == "confined":
        return Who(_confined(p.confined_by), extra)
    if p.what == "service":
        return Who(_principal(f"aws:service/{p.value}", "service", p.value))
    if p.what == "canonical":
        return Who(_account(f"canonical:{p.value}"))
    if p.what == "unresolvable" or p.account is None:
        return None
    if p.what == "account":
        return Who(_account(p.account))
    if own_account is not None and p.account != own_account:
        return Who(_account(p.account), via=p.value)
    if p.what == "user":
        local = _user_from_arn(p.name)
    else:
        name = p.name.split("/")[0] if p.what == "assumed-role" else p.name.rsplit("/", 1)[-1]
        local = _principal(f"aws:role/{name}", "role", name)
    if own_account is None and local.id not in known:
        return Who(_account(p.account), via=p.value)
    return Who(local)


# =============================================================================================
# Allow minus unconditional Deny


@dataclass(frozen=True, slots=True)
class _Deny:
    """An unconditional Deny: whom (``*``: everyone), what it certainly covers, which actions."""

    who: str
    scopes: tuple[Scope, ...]
    actions: frozenset[str]
    #: The ARN of another account's user or role: the Deny reaches only grants naming it.
    via: str | None = None

    def reaches(self, principal: str, via: str | None) -> bool:
        return self.who in (principal, _EVERYWHERE) and self.via in (None, via)


def _covered(scope: Scope, level: str, resource: str, exact: bool) -> bool:
    """True when ``scope`` (of a Deny) covers an action at ``level`` granted on ``resource``."""
    if level not in scope.levels:
        return False
    if scope.resource == _EVERYWHERE:
        return True
    if level != OBJECT:
        return resource == scope.resource
    if scope.exact:
        return exact and resource == scope.resource
    return (resource == scope.resource and not exact) or resource.startswith(
        scope.resource + "/")


_AllowKey = tuple[str, str, bool, str, tuple[str, ...], str | None]


@dataclass(slots=True)
class _Grants:
    """Allowed concrete actions per (principal, resource, exact, source, conditions, via)."""

    allow: dict[_AllowKey, set[str]] = field(default_factory=dict)
    deny: list[_Deny] = field(default_factory=list)

    def add(self, principal: str, scope: Scope, source: str, conditions: tuple[str, ...],
            concrete: Iterable[str], via: str | None = None) -> None:
        """Allow the ``concrete`` actions of the levels ``scope`` reaches."""
        wanted = {c for c in concrete if action_level(c) in scope.levels}
        if wanted:
            key = (principal, scope.resource, scope.exact, source, conditions, via)
            self.allow.setdefault(key, set()).update(wanted)

    def result(self) -> list[Grant]:
        merged: dict[tuple[str, str, str, tuple[str, ...]], set[str]] = {}
        for (principal, resource, exact, source, conditions, via), concrete in \
                self.allow.items():
            denies = [d for d in self.deny if d.reaches(principal, via)]
            left = {c for c in concrete
                    if not any(c in d.actions and any(
                        _covered(s, action_level(c), resource, exact) for s in d.scopes)
                        for d in denies)}
            merged.setdefault((principal, resource, source, conditions), set()).update(left)
        out = []
        for (principal, resource, source, conditions), concrete in merged.items():
            actions = normalise(concrete)
            if actions:
                out.append(Grant(principal, resource, actions, source, conditions))
        return out


def _statement_actions(st: dict[str, Any]) -> tuple[frozenset[str], tuple[str, ...]]:
    if "NotAction" in st:
        return concrete_actions(_list(st.get("NotAction")), not_action=True), ("NotAction",)
    return concrete_actions(str(a) for a in _list(st.get("Action"))), ()


def _statement_scopes(st: dict[str, Any], buckets: Sequence[str]) -> list[Scope]:
    if "NotResource" in st:
        return resource_scopes(_list(st.get("NotResource")), buckets, not_resource=True)
    return resource_scopes(_list(st.get("Resource")), buckets)


def _unconditional_deny(st: dict[str, Any]) -> bool:
    return (st.get("Effect") == "Deny" and not st.get("Condition")
            and not any(k in st for k in ("NotAction", "NotResource", "NotPrincipal")))


def identity_grants(principal: str, policies: Sequence[tuple[str, dict[str, Any]]],
                    buckets: Sequence[str], *, own_account: str | None = None) -> list[Grant]:
    """Grants from the identity policies of one principal (user, group or role).

    ``policies`` are ``(source, document)`` pairs (``iam:policy/NAME``,
    ``iam:inline/PRINCIPAL/NAME``); ``buckets`` are the listed buckets wildcards expand to.
    Unconditional Deny statements of these same policies are subtracted, level by level; an
    IAM Deny counts only on ``*`` or an account-wide IAM ARN (of ``own_account`` when known).
    """
    acc = _Grants()
    for source, doc in policies:
        for st in statements(doc):
            concrete, extra = _statement_actions(st)
            if st.get("Effect") == "Allow":
                conditions = tuple(sorted({*condition_texts(st.get("Condition")), *extra}))
                s3 = concrete - _IAM
                if s3:
                    for scope in _statement_scopes(st, buckets):
                        acc.add(principal, scope, source, conditions, s3)
                iam = _allowed_iam(st, concrete)
                if iam:
                    for bucket in buckets:
                        acc.add(principal, Scope(f"s3://{bucket}", frozenset({IAM})), source,
                                conditions, iam)
            elif _unconditional_deny(st):
                scopes = resource_scopes(_list(st.get("Resource")), buckets, strict=True)
                if concrete & _IAM and _denies_all_iam(st, own_account):
                    scopes.append(Scope(_EVERYWHERE, frozenset({IAM})))
                acc.deny.append(_Deny(principal, tuple(scopes), concrete))
    return acc.result()


@dataclass(slots=True)
class PolicyFacts:
    """What one bucket policy grants, whom it names, and what could not be mapped."""

    grants: list[Grant] = field(default_factory=list)
    principals: list[Principal] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)


def bucket_policy_grants(bucket: str, doc: dict[str, Any], own_account: str | None, *,
                         known: Collection[str] = ()) -> PolicyFacts:
    """Grants of the bucket policy ``doc`` of ``bucket`` (source ``s3:bucket-policy``).

    Only resources of this bucket count; unconditional Deny statements subtract from the same
    principal (or, for ``Principal: *``, from every principal of the policy), level by level.
    A user or role of another account is granted as its account, with the source
    ``s3:bucket-policy (ARN)``. ``known``: see :func:`policy_principals`.
    """
    out = PolicyFacts()
    acc = _Grants()
    own_bucket = f"s3://{bucket}"
    for st in statements(doc):
        who, unmapped = policy_principals(st, own_account, known=known)
        out.unmapped.extend(u for u in unmapped if u not in out.unmapped)
        concrete, extra = _statement_actions(st)
        concrete -= _IAM
        if st.get("Effect") == "Allow":
            scopes = [s for s in _statement_scopes(st, [bucket])
                      if bucket_of(s.resource) == own_bucket]
            base = {*condition_texts(st.get("Condition")), *extra}
            for w in who:
                if w.principal not in out.principals:
                    out.principals.append(w.principal)
                source = f"s3:bucket-policy ({w.via})" if w.via else "s3:bucket-policy"
                for scope in scopes:
                    acc.add(w.principal.id, scope, source, tuple(sorted(base | set(w.extra))),
                            concrete, via=w.via)
        elif _unconditional_deny(st):
            scopes = resource_scopes(_list(st.get("Resource")), [bucket], strict=True)
            for w in who:
                pid = _EVERYWHERE if w.principal.id == ANYONE else w.principal.id
                acc.deny.append(_Deny(pid, tuple(scopes), concrete, via=w.via))
    out.grants = acc.result()
    return out


def acl_grants(bucket: str, acl: dict[str, Any]) -> tuple[list[Grant], list[Principal]]:
    """Grants of a bucket ACL (``GetBucketAcl`` answer; source ``s3:acl``) and their grantees."""
    owner_block = acl.get("Owner")
    owner = str(owner_block.get("ID", "")) if isinstance(owner_block, dict) else ""
    by_grantee: dict[str, set[str]] = {}
    principals: dict[str, Principal] = {}
    for grant in _list(acl.get("Grants")):
        if not isinstance(grant, dict):
            continue
        grantee = grant.get("Grantee")
        if not isinstance(grantee, dict):
            continue
        uri = str(grantee.get("URI", ""))
        cid = str(grantee.get("ID", ""))
        if uri == ALL_USERS:
            p = _anyone()
        elif uri == AUTHENTICATED_USERS:
            p = _account("*")
        elif uri == _LOG_DELIVERY or (grantee.get("Type") == "CanonicalUser" and cid == owner):
            continue
        elif cid:
            p = _account(f"canonical:{cid}")
        else:
            continue
        principals.setdefault(p.id, p)
        by_grantee.setdefault(p.id, set()).update(
            _ACL_ACTIONS.get(str(grant.get("Permission", "")), ()))
    grants = [Grant(pid, f"s3://{bucket}", frozenset(actions), "s3:acl")
              for pid, actions in by_grantee.items() if actions]
    return grants, list(principals.values())


def trust_memberships(role: str, doc: dict[str, Any], own_account: str | None, *,
                      known: Collection[str] = ()) -> tuple[list[Membership], list[Principal],
                                                             list[str]]:
    """``can-assume`` edges from the trust policy of ``role``; principals; unmapped values.

    A user or role of another account becomes its account, with the source
    ``iam:trust-policy:ROLE (ARN)``. ``known``: see :func:`policy_principals`.
    """
    edges: list[Membership] = []
    principals: list[Principal] = []
    unmapped: list[str] = []
    for st in statements(doc):
        if st.get("Effect") != "Allow":
            continue
        if "NotAction" in st:
            allowed = set(_ASSUME) - _matches((str(a) for a in _list(st["NotAction"])), _ASSUME)
        else:
            allowed = _matches((str(a) for a in _list(st.get("Action"))), _ASSUME)
        if not allowed:
            continue
        who, bad = policy_principals(st, own_account, known=known)
        unmapped.extend(bad)
        conditions = condition_texts(st.get("Condition"))
        for w in who:
            principals.append(w.principal)
            source = f"iam:trust-policy:{role}" + (f" ({w.via})" if w.via else "")
            edge = Membership(w.principal.id, f"aws:role/{role}", "can-assume", source,
                              tuple(sorted({*conditions, *w.extra})))
            if edge not in edges:
                edges.append(edge)
    return edges, principals, unmapped


# =============================================================================================
# I/O: IAM


class _Shape:
    """Counts the entries of IAM answers skipped for an unexpected shape (keys only, no values)."""

    def __init__(self) -> None:
        self.skipped: Counter[str] = Counter()

    def skip(self, where: str, count: int = 1) -> None:
        """Count ``count`` skipped entries of ``where``."""
        if count:
            self.skipped[where] += count

    def entries(self, value: Any, where: str) -> list[dict[str, Any]]:
        """The dict items of the list ``value`` (None: none); anything else is skipped."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.skip(where)
            return []
        out = [item for item in value if isinstance(item, dict)]
        self.skip(where, len(value) - len(out))
        return out

    def name(self, entry: dict[str, Any], key: str, where: str) -> str | None:
        """``entry[key]`` when it is a non-empty string; else the entry is skipped."""
        value = entry.get(key)
        if isinstance(value, str) and value:
            return value
        self.skip(where)
        return None

    def names(self, value: Any, where: str) -> list[str]:
        """The non-empty strings of the list ``value``; anything else is skipped."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.skip(where)
            return []
        out = [item for item in value if isinstance(item, str) and item]
        self.skip(where, len(value) - len(out))
        return out

    def problem(self) -> Problem | None:
        """One Problem for everything skipped, or None."""
        if not self.skipped:
            return None
        total = sum(self.skipped.values())
        where = ", ".join(f"{key} {n}" for key, n in sorted(self.skipped.items()))
        return Problem(SOURCE, "iam", f"an IAM answer had an unexpected shape ({total} "
                                      f"{'entry' if total == 1 else 'entries'} skipped: {where})")


def _managed(details: dict[str, Any], shape: _Shape) -> dict[str, tuple[str, Any]]:
    """Managed policy ARN → (name, default version document)."""
    out: dict[str, tuple[str, Any]] = {}
    for policy in shape.entries(details.get("Policies"), "Policies"):
        arn = shape.name(policy, "Arn", "Policies")
        if arn is None:
            continue
        versions = shape.entries(policy.get("PolicyVersionList"), "PolicyVersionList")
        doc = next((v.get("Document") for v in versions if v.get("IsDefaultVersion")), None)
        if doc is not None:
            name = policy.get("PolicyName")
            out[arn] = (name if isinstance(name, str) else "", doc)
    return out


def _fetch_managed(iam: IAMClient | None, arn: str, shape: _Shape) -> tuple[str, Any] | str | None:
    """(name, document) of a managed policy; a reason when unreadable; None when misshapen."""
    if iam is None:
        return f"managed policy {arn}: not in the IAM details"
    got = call(iam, "get_policy", PolicyArn=arn)
    if not got.ok:
        return got.reason(f"managed policy {arn} (iam:GetPolicy)")
    policy = got.data.get("Policy")
    if not isinstance(policy, dict):
        shape.skip("GetPolicy")
        return None
    default = policy.get("DefaultVersionId")
    version = call(iam, "get_policy_version", PolicyArn=arn,
                   VersionId=default if isinstance(default, str) and default else "v1")
    if not version.ok:
        return version.reason(f"managed policy {arn} (iam:GetPolicyVersion)")
    body = version.data.get("PolicyVersion")
    doc = body.get("Document") if isinstance(body, dict) else None
    if doc is None:
        shape.skip("GetPolicyVersion")
        return None
    name = policy.get("PolicyName")
    return (name if isinstance(name, str) and name else arn.rsplit("/", 1)[-1]), doc


def _is_service_user(user: dict[str, Any], shape: _Shape) -> bool:
    tags = {str(t.get("Key", "")).lower() for t in shape.entries(user.get("Tags"), "Tags")}
    return "/service/" in str(user.get("Path", "/")) or "service-account" in tags


class _IamReader:
    """Turns the IAM details into principals, memberships and identity-policy grants."""

    def __init__(self, iam: IAMClient | None, facts: Facts, own_account: str | None,
                 buckets: Sequence[str]) -> None:
        self.iam = iam
        self.facts = facts
        #: The own account: given (STS), else found in the ARNs of the IAM answer.
        self.own = own_account
        self.buckets = buckets
        self.managed: dict[str, tuple[str, Any]] = {}
        #: ``aws:user/NAME`` and ``aws:role/NAME`` of every user and role IAM listed.
        self.known: set[str] = set()
        self.shape = _Shape()

    def problem(self, message: str) -> None:
        self.facts.problems.append(Problem(SOURCE, "iam", message))

    def read(self) -> None:
        assert self.iam is not None, "reading IAM takes a client"
        details, answer = _details(self.iam)
        listed = False
        if answer is not None and answer.state == "unsupported":
            details, reasons = details_by_listing(self.iam)
            listed = True
            for reason in reasons:
                self.problem(f"cannot read IAM: {reason}")
        elif answer is not None:
            op = "iam:GetAccountAuthorizationDetails"
            self.problem(f"cannot read IAM: access denied ({op})" if answer.state == "denied"
                         else f"cannot read IAM: {answer.reason(op)}")
            return
        # the fallback listed the users with their PasswordLastUsed already
        self.apply(details, _last_used_of(details["UserDetailList"]) if listed
                   else _last_used(self.iam))

    def apply(self, details: Any, last_used: dict[str, str] | None = None) -> None:
        """Record what a ``GetAccountAuthorizationDetails``-shaped answer says."""
        if not isinstance(details, dict):
            self.shape.skip("GetAccountAuthorizationDetails")
            self._finish()
            return
        shape = self.shape
        users = [(name, u) for u in shape.entries(details.get("UserDetailList"), "UserDetailList")
                 if (name := shape.name(u, "UserName", "UserDetailList")) is not None]
        groups = [(name, g) for g in shape.entries(details.get("GroupDetailList"),
                                                   "GroupDetailList")
                  if (name := shape.name(g, "GroupName", "GroupDetailList")) is not None]
        roles = [(name, r) for r in shape.entries(details.get("RoleDetailList"), "RoleDetailList")
                 if (name := shape.name(r, "RoleName", "RoleDetailList")) is not None]
        if self.own is None:
            self.own = _account_of(e for _, e in (*users, *groups, *roles))
        self.known = ({f"aws:user/{name}" for name, _ in users}
                      | {f"aws:role/{name}" for name, _ in roles})
        self.managed = _managed(details, shape)
        for name, user in users:
            self.user(name, user, (last_used or {}).get(name))
        for name, group in groups:
            pid = f"aws:group/{name}"
            self.facts.add_principal(_principal(pid, "group", name))
            self.grants(pid, name, group, "GroupPolicyList")
        for name, role in roles:
            self.role(name, role)
        self._finish()

    def _finish(self) -> None:
        found = self.shape.problem()
        if found is not None:
            self.facts.problems.append(found)
            self.shape.skipped.clear()

    def user(self, name: str, user: dict[str, Any], last_used: str | None) -> None:
        pid = f"aws:user/{name}"
        self.facts.add_principal(Principal(pid, "user", name, SOURCE,
                                           human=not _is_service_user(user, self.shape),
                                           last_used=last_used))
        for group in self.shape.names(user.get("GroupList"), "GroupList"):
            self.facts.memberships.append(Membership(pid, f"aws:group/{group}", "member-of",
                                                     "iam:group-membership"))
        self.grants(pid, name, user, "UserPolicyList")

    def role(self, name: str, role: dict[str, Any]) -> None:
        pid = f"aws:role/{name}"
        self.facts.add_principal(_principal(pid, "role", name))
        trust = role.get("AssumeRolePolicyDocument")
        if trust is not None:
            try:
                edges, principals, unmapped = trust_memberships(
                    name, parse_document(trust), self.own, known=self.known)
            except ValueError:
                self.problem(f"the trust policy of role {name} is not valid JSON")
            else:
                for p in principals:
                    self.facts.add_principal(p)
                self.facts.memberships.extend(edges)
                for value in unmapped:
                    self.problem(f"role {name} trusts {value}; who may assume it through that "
                                 "is not listed")
        self.grants(pid, name, role, "RolePolicyList")

    def grants(self, pid: str, name: str, entity: dict[str, Any], inline_key: str) -> None:
        shape = self.shape
        policies: list[tuple[str, dict[str, Any]]] = []
        for attached in shape.entries(entity.get("AttachedManagedPolicies"),
                                      "AttachedManagedPolicies"):
            arn = shape.name(attached, "PolicyArn", "AttachedManagedPolicies")
            if arn is None:
                continue
            if arn not in self.managed:
                fetched = _fetch_managed(self.iam, arn, shape)
                if isinstance(fetched, str):
                    self.problem(f"cannot read IAM: {fetched}")
                    continue
                if fetched is None:
                    continue
                self.managed[arn] = fetched
            policy_name, doc = self.managed[arn]
            label = policy_name or attached.get("PolicyName") or arn.rsplit("/", 1)[-1]
            self._add(policies, f"iam:policy/{label}", doc)
        for inline in shape.entries(entity.get(inline_key), inline_key):
            policy = shape.name(inline, "PolicyName", inline_key)
            doc = inline.get("PolicyDocument")
            if policy is None:
                continue
            if doc is None:
                shape.skip(inline_key)
                continue
            self._add(policies, f"iam:inline/{name}/{policy}", doc)
        self.facts.grants.extend(identity_grants(pid, policies, self.buckets,
                                                 own_account=self.own))

    def _add(self, policies: list[tuple[str, dict[str, Any]]], source: str, doc: Any) -> None:
        try:
            policies.append((source, parse_document(doc)))
        except ValueError:
            self.problem(f"{source} is not a valid JSON policy document")


def iam_facts(details: Any, buckets: Sequence[str], *, own_account: str | None = None,
              iam: IAMClient | None = None, last_used: dict[str, str] | None = None) -> Facts:
    """The facts of a ``GetAccountAuthorizationDetails``-shaped answer (no I/O unless ``iam``).

    ``iam``, when given, reads the managed policies the details lack; ``own_accounts`` of the
    result holds ``own_account`` or, when None, the account of the ARNs in the answer.
    """
    facts = Facts(sources=[SOURCE])
    reader = _IamReader(iam, facts, own_account, buckets)
    reader.apply(details, last_used)
    if reader.own:
        facts.own_accounts.append(reader.own)
    return facts


# =============================================================================================
# I/O: S3


def _config(answer: Answer, key: str) -> dict[str, Any]:
    data = answer.data.get(key) if answer.ok else None
    return data if isinstance(data, dict) else {}


def _unread(facts: Facts, asset: str, answer: Answer, what: str) -> bool:
    """Record a Problem unless the answer is data or "not configured"; True when recorded."""
    if answer.state in ("ok", "absent"):
        return False
    facts.problems.append(Problem(SOURCE, asset, answer.reason(what)))
    return True


def _foreign(pid: str, own_account: str | None) -> bool:
    if pid == ANYONE or pid.startswith("aws:confined/"):
        return True
    if not pid.startswith("aws:account/"):
        return False
    return pid.removeprefix("aws:account/") != own_account


def _collect_bucket(conn: Connection, facts: Facts, bucket: str, account_bpa: dict[str, bool],
                    own: str | None, known: Collection[str]) -> None:
    asset = f"s3://{bucket}"
    s3 = conn.client("s3", bucket_region(conn, bucket))

    bpa_answer = call(s3, "get_public_access_block", Bucket=bucket)
    _unread(facts, asset, bpa_answer, "the bucket Public Access Block (s3:GetPublicAccessBlock)")
    bpa = bpa_flags(_config(bpa_answer, "PublicAccessBlockConfiguration"))
    ignore_acls = bpa["IgnorePublicAcls"] or account_bpa["IgnorePublicAcls"]
    restrict = bpa["RestrictPublicBuckets"] or account_bpa["RestrictPublicBuckets"]

    policy = call(s3, "get_bucket_policy", Bucket=bucket)
    if not _unread(facts, asset, policy, "the bucket policy (s3:GetBucketPolicy)") and policy.ok:
        try:
            doc = load(str(policy.data.get("Policy", "")))
        except ValueError:
            facts.problems.append(Problem(SOURCE, asset, "the bucket policy (s3:GetBucketPolicy) "
                                                         "is not valid JSON"))
        else:
            found = bucket_policy_grants(bucket, doc, own, known=known)
            grants = found.grants
            if restrict and public_statements(doc):
                grants = [g for g in grants if not _foreign(g.principal, own)]
            for p in found.principals:
                if any(g.principal == p.id for g in grants):
                    facts.add_principal(p)
            facts.grants.extend(grants)
            for value in found.unmapped:
                facts.problems.append(Problem(SOURCE, asset, f"the bucket policy names {value}; "
                                              "who that is cannot be listed"))

    ownership = call(s3, "get_bucket_ownership_controls", Bucket=bucket)
    _unread(facts, asset, ownership, "the ownership controls (s3:GetBucketOwnershipControls)")
    rules = _list(_config(ownership, "OwnershipControls").get("Rules"))
    enforced = any(isinstance(r, dict) and r.get("ObjectOwnership") == "BucketOwnerEnforced"
                   for r in rules)

    acl = call(s3, "get_bucket_acl", Bucket=bucket)
    if not _unread(facts, asset, acl, "the bucket ACL (s3:GetBucketAcl)") and acl.ok \
            and not enforced:
        grants, principals = acl_grants(bucket, acl.data)
        if ignore_acls:
            grants = [g for g in grants if g.principal not in (ANYONE, "aws:account/*")]
        for p in principals:
            if any(g.principal == p.id for g in grants):
                facts.add_principal(p)
        facts.grants.extend(grants)


def _list_buckets(conn: Connection, facts: Facts,
                  wanted: Sequence[str] | None) -> list[str]:
    listed, answer = all_buckets(conn)
    if not answer.ok:
        facts.problems.append(Problem(SOURCE, "s3", answer.reason("the buckets (s3:ListBuckets)")))
        return list(wanted) if wanted is not None else listed
    if wanted is None:
        return listed
    for name in wanted:
        if name not in listed:
            facts.problems.append(Problem(SOURCE, f"s3://{name}",
                                          "the bucket was not found among the buckets "
                                          "s3:ListBuckets lists"))
    return [b for b in wanted if b in listed]


def _account_bpa(conn: Connection, facts: Facts, own: str | None) -> dict[str, bool]:
    if not conn.access.aws or not own:
        return bpa_flags(None)
    answer = call(conn.client("s3control"), "get_public_access_block", AccountId=own)
    _unread(facts, f"aws:{own}", answer,
            "the account Public Access Block (s3control:GetPublicAccessBlock)")
    return bpa_flags(_config(answer, "PublicAccessBlockConfiguration"))


# =============================================================================================
# Entry point


def collect_aws(access: Access, *, buckets: Sequence[str] | None = None,
                observer: Observer | None = None) -> Facts:
    """Read IAM and S3 access of one AWS account (or S3-compatible store) into :class:`Facts`.

    ``buckets`` restricts the scan to those buckets (a name not listed becomes a Problem);
    ``observer(service, operation)`` sees every API call before it is sent. Raises
    :class:`~hipaa_audit.aws.client.S3SetupError` when the credentials, role or endpoint cannot
    be used; everything unreadable after that is a :class:`Problem` in the facts. The own
    account (STS, else the ARNs of the IAM answer) goes to ``own_accounts`` when known.
    """
    conn = Connection(access, observer)
    facts = Facts(sources=[SOURCE])
    names = _list_buckets(conn, facts, buckets)

    reader = _IamReader(conn.client("iam"), facts, conn.account_id, names)
    reader.read()
    own = reader.own
    if own:
        facts.own_accounts.append(own)
    system = f"aws:{own or 'unknown'}"
    for name in names:
        facts.add_resource(Resource(f"s3://{name}", "bucket", phi=None, system=system))
    account_bpa = _account_bpa(conn, facts, own)
    known = frozenset(reader.known)
    for name in names:
        _collect_bucket(conn, facts, name, account_bpa, own, known)

    if buckets is not None:
        scope = {f"s3://{b}" for b in buckets}
        facts.grants = [g for g in facts.grants if bucket_of(g.resource) in scope]
    for grant in facts.grants:
        if grant.resource != bucket_of(grant.resource) and bucket_of(grant.resource) in \
                facts.resources:
            facts.add_resource(Resource(grant.resource, "prefix", phi=None, system=system))
    return facts


__all__ = ["PolicyFacts", "Who", "acl_grants", "bucket_policy_grants", "collect_aws", "iam_facts",
           "identity_grants", "policy_principals", "trust_memberships"]
