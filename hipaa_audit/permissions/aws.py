"""Collect AWS IAM and S3 access as neutral facts (principals, memberships, grants, resources).

:func:`collect_aws` reads, through the read-only :class:`~hipaa_audit.s3.client.Connection`
(List, Get and Head calls only, plus STS GetCallerIdentity), who may reach which bucket:

- **IAM**: ``iam:GetAccountAuthorizationDetails`` (paginated by ``Marker``) gives the users (path,
  tags, groups, attached and inline policies), groups, roles (trust policy, attached and inline
  policies) and the managed policies (default version). ``iam:ListUsers`` adds each user's
  ``PasswordLastUsed`` (which the details call does not carry; silently skipped when denied). A
  managed policy attached but absent from the details is read with ``GetPolicy`` +
  ``GetPolicyVersion``. When a store answers the details call "not supported", the same facts are
  read with ``ListUsers``/``ListGroupsForUser``/``ListAttachedUserPolicies``/``ListUserPolicies``
  + ``GetUserPolicy``/``ListUserTags``, ``ListGroups``/..., ``ListRoles``/... instead (moto 5.2.5
  supports the details call, so this fallback is only exercised directly by the tests). A
  denied or failed details call becomes a :class:`Problem` and S3 is still read.
- **S3**: ``ListBuckets`` (restricted to ``buckets`` when given; a name given but not listed is a
  Problem), then per bucket the bucket policy, the ACL, the ownership controls and the bucket
  Public Access Block; the account Public Access Block via s3control only on AWS semantics
  (``access.aws``). Every answer that is denied, unsupported or failed becomes a Problem naming
  the operation, never an exception. No object is listed or read: no PHI is touched.

Translation rules (kept simple on purpose; the analysis shows conditions, it does not evaluate
them):

- Actions are matched case-insensitively (``fnmatch``) against :data:`S3_ACTIONS`, a table of
  concrete S3 actions, each mapped to one normalised action (``list``, ``read``, ``write``,
  ``delete``, ``admin``); S3 actions outside the table (``PutBucketTagging``, ``PutBucketCORS``,
  ``ListAllMyBuckets`` ...) grant nothing here. ``*`` and ``iam:*`` (the only IAM patterns that
  count) also make the principal ``admin`` of every listed bucket when the statement's resources
  cover IAM (``*`` or an ``arn:aws:iam:`` resource, or a ``NotResource``). An Allow with
  ``NotAction`` grants every table action not listed (the IAM pseudo-action too) and carries
  the condition text ``NotAction``.
- Resources: ``arn:aws:s3:::B`` and ``arn:aws:s3:::B/*`` → ``s3://B``; ``arn:aws:s3:::B/P/*`` →
  ``s3://B/P`` (a prefix; a key with a wildcard inside is cut before it); ``*`` and bucket
  wildcards expand to the matching listed buckets; a bucket named explicitly is kept even if not
  listed (unless ``buckets`` restricts the scan). ``NotResource`` → every listed bucket whose
  ARN (or ``ARN/*``) no listed pattern matches.
- Denies: only *unconditional* Deny statements (no ``Condition``, ``NotAction``,
  ``NotResource`` or ``NotPrincipal``) are applied, and only to the grants of the same principal
  from its own policies (a group's Deny is not pushed onto its members' own grants; a bucket
  policy's Deny applies to the same principal or, for ``*``, to every principal of that policy).
  They subtract concrete actions on the same resource, on its bucket when the grant is on a
  prefix, or everywhere for ``*``; a Deny on a prefix leaves a whole-bucket grant alone. The
  result can only overstate access, never hide it.
- Principals in bucket and trust policies: ``*`` → :data:`ANYONE`; an account id or
  ``arn:aws:iam::ID:root`` → ``aws:account/ID`` (own account too); a user or role ARN of the own
  account (or an STS assumed-role ARN) → ``aws:user/NAME``/``aws:role/NAME``; a user or role ARN
  of *another* account → ``aws:account/ID`` with the condition text ``principal ARN`` (the
  convention has no id for foreign users); ``Service`` → ``aws:service/NAME``; ``CanonicalUser``
  → ``aws:account/canonical:ID``; ``NotPrincipal`` in an Allow → ANYONE with the condition text
  ``NotPrincipal``. ``Federated`` and unrecognised principals become Problems.
- ACLs: AllUsers → ANYONE, AuthenticatedUsers → ``aws:account/*``, LogDelivery and the owner
  are skipped, another canonical user → ``aws:account/canonical:ID``; READ → list, WRITE →
  write + delete, READ_ACP → read, WRITE_ACP → admin, FULL_CONTROL → all five.
- Block Public Access and ownership: ``IgnorePublicAcls`` (bucket or account level) drops the ACL
  grants to ANYONE and ``aws:account/*``; ``RestrictPublicBuckets`` (either level), *when the
  bucket policy is public* (an Allow to ``*`` without a confining condition, as S3 judges it),
  drops the policy grants to ANYONE and to other accounts (AWS then lets only the owner account
  and AWS services in; a non-public policy is not restricted, so its cross-account grants stay).
  ``BlockPublicAcls``/``BlockPublicPolicy`` only refuse future changes and drop nothing.
  ``BucketOwnerEnforced`` ownership disables ACLs: every ACL grant is dropped.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

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
from hipaa_audit.s3.client import Access, Answer, Connection, Observer, call
from hipaa_audit.s3.collect import bucket_region
from hipaa_audit.s3.policy import (
    ALL_USERS,
    AUTHENTICATED_USERS,
    _list,
    bpa_flags,
    load,
    public_statements,
    statements,
)

SOURCE = "aws"
#: The pseudo-action standing for full IAM control (``iam:*`` or ``*``): admin of every bucket.
IAM_ADMIN = "iam:*"
#: Everywhere (a Deny on ``*``).
_EVERYWHERE = "*"

_LIST = ("ListBucket", "ListBucketVersions", "ListBucketMultipartUploads",
         "ListMultipartUploadParts")
_READ = ("GetObject", "GetObjectVersion", "GetObjectAcl", "GetObjectVersionAcl",
         "GetObjectTagging", "GetObjectVersionTagging", "GetObjectAttributes",
         "GetObjectVersionAttributes", "GetObjectRetention", "GetObjectLegalHold",
         "GetObjectTorrent", "GetObjectVersionTorrent", "GetObjectVersionForReplication",
         "GetBucketPolicy", "GetBucketPolicyStatus", "GetBucketAcl", "GetBucketLocation",
         "GetBucketVersioning", "GetBucketLogging", "GetBucketTagging",
         "GetBucketOwnershipControls", "GetBucketPublicAccessBlock",
         "GetBucketObjectLockConfiguration", "GetBucketNotification", "GetBucketCORS",
         "GetBucketWebsite", "GetEncryptionConfiguration", "GetLifecycleConfiguration",
         "GetReplicationConfiguration", "GetInventoryConfiguration", "GetAnalyticsConfiguration",
         "GetMetricsConfiguration", "GetIntelligentTieringConfiguration",
         "GetAccelerateConfiguration", "GetBucketRequestPayment")
_WRITE = ("PutObject", "PutObjectTagging", "PutObjectVersionTagging", "PutObjectRetention",
          "PutObjectLegalHold", "RestoreObject", "AbortMultipartUpload", "ReplicateObject")
_DELETE = ("DeleteObject", "DeleteObjectVersion", "DeleteObjectTagging",
           "DeleteObjectVersionTagging", "DeleteBucket")
_ADMIN = ("PutBucketPolicy", "DeleteBucketPolicy", "PutBucketAcl", "PutObjectAcl",
          "PutObjectVersionAcl", "PutEncryptionConfiguration", "PutBucketPublicAccessBlock",
          "PutBucketOwnershipControls", "PutBucketVersioning", "PutLifecycleConfiguration",
          "PutBucketObjectLockConfiguration", "PutReplicationConfiguration",
          "BypassGovernanceRetention")
#: Concrete S3 actions (lower case, ``s3:`` prefix) → normalised action.
S3_ACTIONS: dict[str, str] = {
    f"s3:{name}".lower(): action
    for action, names in (("list", _LIST), ("read", _READ), ("write", _WRITE),
                          ("delete", _DELETE), ("admin", _ADMIN))
    for name in names
}
#: What every pattern is matched against: the S3 table and the IAM pseudo-action.
_ALL_CONCRETE: tuple[str, ...] = (*S3_ACTIONS, IAM_ADMIN)
_ASSUME = ("sts:assumerole", "sts:assumerolewithsaml", "sts:assumerolewithwebidentity")
_S3_ARN = re.compile(r"^arn:aws[a-z-]*:s3:::([^/]+)(?:/(.*))?$")
_IAM_ARN = re.compile(
    r"^arn:aws[a-z-]*:(iam|sts)::(\d{12}|\*)?:(root|user|role|assumed-role)(?:/(.*))?$")
_ACCOUNT_ID = re.compile(r"^\d{12}$")
_ACL_ACTIONS = {"READ": ("list",), "WRITE": ("write", "delete"), "READ_ACP": ("read",),
                "WRITE_ACP": ("admin",), "FULL_CONTROL": ACTIONS}
_LOG_DELIVERY = "http://acs.amazonaws.com/groups/s3/LogDelivery"


# =============================================================================================
# Pure translation: actions, resources, conditions, principals


def _matches(patterns: Iterable[str], names: Iterable[str]) -> set[str]:
    lowered = [p.lower() for p in patterns]
    return {n for n in names if any(fnmatchcase(n, p) for p in lowered)}


def concrete_actions(patterns: Iterable[str], *, not_action: bool = False) -> frozenset[str]:
    """The concrete actions (lower case) of :data:`S3_ACTIONS` plus ``iam:*`` a statement allows.

    ``patterns`` are the statement's ``Action`` (or, with ``not_action``, its ``NotAction``:
    then every concrete action none of them matches).
    """
    hit = _matches(patterns, _ALL_CONCRETE)
    return frozenset(set(_ALL_CONCRETE) - hit if not_action else hit)


def normalise(concrete: Iterable[str]) -> frozenset[str]:
    """Map concrete actions (from :func:`concrete_actions`) to the normalised :data:`ACTIONS`."""
    return frozenset("admin" if c == IAM_ADMIN else S3_ACTIONS[c]
                     for c in concrete if c == IAM_ADMIN or c in S3_ACTIONS)


def s3_actions(patterns: Iterable[str], *, not_action: bool = False) -> frozenset[str]:
    """The normalised S3 actions that ``Action`` (or ``NotAction``) patterns grant on a bucket.

    >>> sorted(s3_actions(["s3:Get*"]))
    ['read']
    >>> sorted(s3_actions(["s3:*Object"]))
    ['delete', 'read', 'write']
    """
    return normalise(concrete_actions(patterns, not_action=not_action) - {IAM_ADMIN})


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def condition_texts(condition: Any) -> tuple[str, ...]:
    """A policy ``Condition`` as sorted short texts: ``StringEquals aws:SourceVpce=vpce-1``."""
    out: list[str] = []
    if isinstance(condition, dict):
        for operator, block in condition.items():
            if isinstance(block, dict):
                for key, value in block.items():
                    values = ",".join(sorted(_text(v) for v in _list(value)))
                    out.append(f"{operator} {key}={values}")
            else:
                out.append(f"{operator} {_text(block)}")
    return tuple(sorted(out))


def _prefix(key: str | None) -> str:
    if not key:
        return ""
    cut = min((i for i in (key.find("*"), key.find("?")) if i >= 0), default=len(key))
    return key[:cut].strip("/")


def resource_ids(patterns: Iterable[str], buckets: Sequence[str], *,
                 not_resource: bool = False) -> list[str]:
    """The resource ids (``s3://B`` or ``s3://B/PREFIX``) that ``Resource`` patterns name.

    Wildcards expand against ``buckets`` (the listed buckets); an explicit bucket name is kept
    even when not listed. With ``not_resource`` the patterns are a ``NotResource``: every listed
    bucket none of them matches (by its ARN or ``ARN/*``). Non-S3 resources name nothing.
    """
    patterns = [str(p) for p in patterns]
    if not_resource:
        return [f"s3://{b}" for b in buckets
                if not any(fnmatchcase(f"arn:aws:s3:::{b}", p)
                           or fnmatchcase(f"arn:aws:s3:::{b}/*", p) for p in patterns)]
    out: list[str] = []
    for pattern in patterns:
        if pattern == "*":
            names: list[str] = list(buckets)
            prefix = ""
        else:
            m = _S3_ARN.match(pattern)
            if not m:
                continue
            bucket, key = m.groups()
            names = ([b for b in buckets if fnmatchcase(b, bucket)]
                     if any(c in bucket for c in "*?") else [bucket])
            prefix = _prefix(key)
        for name in names:
            rid = f"s3://{name}/{prefix}" if prefix else f"s3://{name}"
            if rid not in out:
                out.append(rid)
    return out


def _covers_iam(statement: dict[str, Any]) -> bool:
    if "NotResource" in statement:
        return True
    return any(r == "*" or r.startswith(("arn:aws:iam:", "arn:*"))
               for r in (str(x) for x in _list(statement.get("Resource"))))


def bucket_of(resource: str) -> str:
    """``s3://B`` for ``s3://B`` or ``s3://B/PREFIX``."""
    return "s3://" + resource.removeprefix("s3://").split("/", 1)[0]


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
    """One principal named by a policy statement, with condition texts the mapping adds."""

    principal: Principal
    extra: tuple[str, ...] = ()


def policy_principals(statement: dict[str, Any],
                      own_account: str | None) -> tuple[list[Who], list[str]]:
    """Map the ``Principal`` of a bucket or trust policy statement to principals.

    Returns the principals and the values that could not be mapped (``Federated``, unknown
    forms) as ``"Key: value"`` texts for a Problem.
    """
    if "NotPrincipal" in statement:
        return [Who(_anyone(), ("NotPrincipal",))], []
    value = statement.get("Principal")
    if value == "*":
        return [Who(_anyone())], []
    if not isinstance(value, dict):
        return [], [f"Principal: {value!r}"] if value is not None else []
    found: list[Who] = []
    unmapped: list[str] = []
    for kind, items in value.items():
        for item in (str(x) for x in _list(items)):
            who = _map_principal(str(kind), item, own_account)
            if who is None:
                unmapped.append(f"{kind}: {item}")
            elif who not in found:
                found.append(who)
    return found, unmapped


def _map_principal(kind: str, value: str, own_account: str | None) -> Who | None:
    if kind == "Service":
        return Who(_principal(f"aws:service/{value}", "service", value))
    if kind == "CanonicalUser":
        return Who(_account(f"canonical:{value}"))
    if kind != "AWS":
        return None
    if value == "*":
        return Who(_anyone())
    if _ACCOUNT_ID.match(value):
        return Who(_account(value))
    m = _IAM_ARN.match(value)
    if not m or not m.group(2) or m.group(2) == "*":
        return None
    _service, account, what, rest = m.groups()
    if what == "root":
        return Who(_account(account))
    if own_account is not None and account != own_account:
        return Who(_account(account), (f"principal {value}",))
    if not rest:
        return None
    if what == "user":
        return Who(_user_from_arn(rest))
    name = rest.split("/")[0] if what == "assumed-role" else rest.rsplit("/", 1)[-1]
    return Who(_principal(f"aws:role/{name}", "role", name))


# =============================================================================================
# Allow minus unconditional Deny


@dataclass(slots=True)
class _Grants:
    """Allowed concrete actions per (principal, resource, source, conditions), minus denies."""

    allow: dict[tuple[str, str, str, tuple[str, ...]], set[str]] = field(default_factory=dict)
    #: (principal or "*", resource ids or {"*"}, denied concrete actions)
    deny: list[tuple[str, frozenset[str], frozenset[str]]] = field(default_factory=list)

    def add(self, principal: str, resource: str, source: str, conditions: tuple[str, ...],
            concrete: Iterable[str]) -> None:
        self.allow.setdefault((principal, resource, source, conditions), set()).update(concrete)

    def result(self) -> list[Grant]:
        out = []
        for (principal, resource, source, conditions), concrete in self.allow.items():
            left = set(concrete)
            for who, where, denied in self.deny:
                if who in (principal, _EVERYWHERE) and (
                        _EVERYWHERE in where or resource in where
                        or bucket_of(resource) in where):
                    left -= denied
            actions = normalise(left)
            if actions:
                out.append(Grant(principal, resource, actions, source, conditions))
        return out


def _statement_actions(st: dict[str, Any]) -> tuple[frozenset[str], tuple[str, ...]]:
    if "NotAction" in st:
        return concrete_actions(_list(st.get("NotAction")), not_action=True), ("NotAction",)
    return concrete_actions(str(a) for a in _list(st.get("Action"))), ()


def _statement_resources(st: dict[str, Any], buckets: Sequence[str]) -> list[str]:
    if "NotResource" in st:
        return resource_ids(_list(st.get("NotResource")), buckets, not_resource=True)
    return resource_ids(_list(st.get("Resource")), buckets)


def _unconditional_deny(st: dict[str, Any]) -> bool:
    return (st.get("Effect") == "Deny" and not st.get("Condition")
            and not any(k in st for k in ("NotAction", "NotResource", "NotPrincipal")))


def _deny_where(st: dict[str, Any], buckets: Sequence[str]) -> frozenset[str]:
    resources = [str(r) for r in _list(st.get("Resource"))]
    if any(r in ("*", "arn:aws:s3:::*", "arn:aws:s3:::*/*") for r in resources):
        return frozenset({_EVERYWHERE})
    return frozenset(resource_ids(resources, buckets))


def identity_grants(principal: str, policies: Sequence[tuple[str, dict[str, Any]]],
                    buckets: Sequence[str]) -> list[Grant]:
    """Grants from the identity policies of one principal (user, group or role).

    ``policies`` are ``(source, document)`` pairs (``iam:policy/NAME``,
    ``iam:inline/PRINCIPAL/NAME``); ``buckets`` are the listed buckets wildcards expand to.
    Unconditional Deny statements of these same policies are subtracted.
    """
    acc = _Grants()
    for source, doc in policies:
        for st in statements(doc):
            concrete, extra = _statement_actions(st)
            if st.get("Effect") == "Allow":
                conditions = tuple(sorted({*condition_texts(st.get("Condition")), *extra}))
                s3 = concrete - {IAM_ADMIN}
                if s3:
                    for rid in _statement_resources(st, buckets):
                        acc.add(principal, rid, source, conditions, s3)
                if IAM_ADMIN in concrete and _covers_iam(st):
                    for bucket in buckets:
                        acc.add(principal, f"s3://{bucket}", source, conditions, {IAM_ADMIN})
            elif _unconditional_deny(st):
                where = _deny_where(st, buckets)
                if IAM_ADMIN in concrete and _covers_iam(st):
                    acc.deny.append((principal, frozenset({_EVERYWHERE}),
                                     frozenset({IAM_ADMIN})))
                acc.deny.append((principal, where, concrete - {IAM_ADMIN}))
    return acc.result()


@dataclass(slots=True)
class PolicyFacts:
    """What one bucket policy grants, whom it names, and what could not be mapped."""

    grants: list[Grant] = field(default_factory=list)
    principals: list[Principal] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)


def bucket_policy_grants(bucket: str, doc: dict[str, Any],
                         own_account: str | None) -> PolicyFacts:
    """Grants of the bucket policy ``doc`` of ``bucket`` (source ``s3:bucket-policy``).

    Only resources of this bucket count; unconditional Deny statements subtract from the same
    principal (or, for ``Principal: *``, from every principal of the policy).
    """
    out = PolicyFacts()
    acc = _Grants()
    for st in statements(doc):
        who, unmapped = policy_principals(st, own_account)
        out.unmapped.extend(u for u in unmapped if u not in out.unmapped)
        concrete, extra = _statement_actions(st)
        concrete -= {IAM_ADMIN}
        rids = [r for r in _statement_resources(st, [bucket]) if bucket_of(r) == f"s3://{bucket}"]
        if st.get("Effect") == "Allow":
            base = {*condition_texts(st.get("Condition")), *extra}
            for w in who:
                if w.principal not in out.principals:
                    out.principals.append(w.principal)
                for rid in rids:
                    acc.add(w.principal.id, rid, "s3:bucket-policy",
                            tuple(sorted(base | set(w.extra))), concrete)
        elif _unconditional_deny(st):
            where = _deny_where(st, [bucket])
            for w in who:
                pid = _EVERYWHERE if w.principal.id == ANYONE else w.principal.id
                acc.deny.append((pid, where, concrete))
    out.grants = acc.result()
    return out


def acl_grants(bucket: str, acl: dict[str, Any]) -> tuple[list[Grant], list[Principal]]:
    """Grants of a bucket ACL (``GetBucketAcl`` answer; source ``s3:acl``) and their grantees."""
    owner = str((acl.get("Owner") or {}).get("ID", ""))
    by_grantee: dict[str, set[str]] = {}
    principals: dict[str, Principal] = {}
    for grant in _list(acl.get("Grants")):
        if not isinstance(grant, dict):
            continue
        grantee = grant.get("Grantee") or {}
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


def trust_memberships(role: str, doc: dict[str, Any],
                      own_account: str | None) -> tuple[list[Membership], list[Principal],
                                                         list[str]]:
    """``can-assume`` edges from the trust policy of ``role``; principals; unmapped values."""
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
        who, bad = policy_principals(st, own_account)
        unmapped.extend(bad)
        conditions = condition_texts(st.get("Condition"))
        for w in who:
            principals.append(w.principal)
            edge = Membership(w.principal.id, f"aws:role/{role}", "can-assume",
                              f"iam:trust-policy:{role}",
                              tuple(sorted({*conditions, *w.extra})))
            if edge not in edges:
                edges.append(edge)
    return edges, principals, unmapped


# =============================================================================================
# I/O: IAM


def parse_document(value: Any) -> dict[str, Any]:
    """A policy document as IAM returns it: a dict, a JSON string or a URL-encoded JSON string."""
    if isinstance(value, dict):
        return value
    text = str(value)
    try:
        return load(text)
    except ValueError:
        return load(urllib.parse.unquote(text))


def _pages(client: Any, operation: str, key: str, **params: Any) -> tuple[list[Any], Answer | None]:
    """Every item under ``key`` across ``Marker`` pages; the failing answer, if one failed."""
    items: list[Any] = []
    marker: str | None = None
    while True:
        answer = call(client, operation, **params, **({"Marker": marker} if marker else {}))
        if not answer.ok:
            return items, answer
        items.extend(answer.data.get(key, []))
        marker = answer.data.get("Marker")
        if not answer.data.get("IsTruncated") or not marker:
            return items, None


def _details(iam: Any) -> tuple[dict[str, list[Any]], Answer | None]:
    out: dict[str, list[Any]] = {k: [] for k in ("UserDetailList", "GroupDetailList",
                                                 "RoleDetailList", "Policies")}
    marker: str | None = None
    while True:
        answer = call(iam, "get_account_authorization_details",
                      Filter=["User", "Group", "Role", "LocalManagedPolicy", "AWSManagedPolicy"],
                      **({"Marker": marker} if marker else {}))
        if not answer.ok:
            return out, answer
        for key, items in out.items():
            items.extend(answer.data.get(key, []))
        marker = answer.data.get("Marker")
        if not answer.data.get("IsTruncated") or not marker:
            return out, None


def _inline(iam: Any, kind: str, name: str, problems: list[str]) -> list[dict[str, Any]]:
    """Inline policies of one user/group/role via List*Policies + Get*Policy (the fallback)."""
    names, bad = _pages(iam, f"list_{kind}_policies", "PolicyNames",
                        **{f"{kind.capitalize()}Name": name})
    if bad is not None:
        problems.append(bad.reason(f"inline policies of {kind} {name} "
                                   f"(iam:List{kind.capitalize()}Policies)"))
    out = []
    for policy in names:
        got = call(iam, f"get_{kind}_policy", **{f"{kind.capitalize()}Name": name,
                                                 "PolicyName": policy})
        if got.ok:
            out.append({"PolicyName": policy, "PolicyDocument": got.data.get("PolicyDocument")})
        else:
            problems.append(got.reason(f"inline policy {policy} of {kind} {name} "
                                       f"(iam:Get{kind.capitalize()}Policy)"))
    return out


def _attached(iam: Any, kind: str, name: str, problems: list[str]) -> list[dict[str, Any]]:
    items, bad = _pages(iam, f"list_attached_{kind}_policies", "AttachedPolicies",
                        **{f"{kind.capitalize()}Name": name})
    if bad is not None:
        problems.append(bad.reason(f"attached policies of {kind} {name} "
                                   f"(iam:ListAttached{kind.capitalize()}Policies)"))
    return items


def details_by_listing(iam: Any) -> tuple[dict[str, list[Any]], list[str]]:
    """The ``GetAccountAuthorizationDetails`` shape, read with List*/Get* calls (the fallback).

    Returns the details (without ``Policies``: managed documents are fetched on demand) and the
    reasons of every call that failed.
    """
    problems: list[str] = []
    out: dict[str, list[Any]] = {"UserDetailList": [], "GroupDetailList": [],
                                 "RoleDetailList": [], "Policies": []}
    users, bad = _pages(iam, "list_users", "Users")
    if bad is not None:
        problems.append(bad.reason("IAM users (iam:ListUsers)"))
    for user in users:
        name = user["UserName"]
        groups, bad = _pages(iam, "list_groups_for_user", "Groups", UserName=name)
        if bad is not None:
            problems.append(bad.reason(f"groups of user {name} (iam:ListGroupsForUser)"))
        tags, bad = _pages(iam, "list_user_tags", "Tags", UserName=name)
        out["UserDetailList"].append({
            **user, "GroupList": [g["GroupName"] for g in groups], "Tags": tags,
            "AttachedManagedPolicies": _attached(iam, "user", name, problems),
            "UserPolicyList": _inline(iam, "user", name, problems)})
    groups, bad = _pages(iam, "list_groups", "Groups")
    if bad is not None:
        problems.append(bad.reason("IAM groups (iam:ListGroups)"))
    for group in groups:
        name = group["GroupName"]
        out["GroupDetailList"].append({
            **group, "AttachedManagedPolicies": _attached(iam, "group", name, problems),
            "GroupPolicyList": _inline(iam, "group", name, problems)})
    roles, bad = _pages(iam, "list_roles", "Roles")
    if bad is not None:
        problems.append(bad.reason("IAM roles (iam:ListRoles)"))
    for role in roles:
        name = role["RoleName"]
        out["RoleDetailList"].append({
            **role, "AttachedManagedPolicies": _attached(iam, "role", name, problems),
            "RolePolicyList": _inline(iam, "role", name, problems)})
    return out, problems


def _managed(details: dict[str, list[Any]]) -> dict[str, tuple[str, Any]]:
    """Managed policy ARN → (name, default version document)."""
    out: dict[str, tuple[str, Any]] = {}
    for policy in details.get("Policies", []):
        doc = next((v.get("Document") for v in policy.get("PolicyVersionList", [])
                    if v.get("IsDefaultVersion")), None)
        if doc is not None:
            out[str(policy["Arn"])] = (str(policy.get("PolicyName", "")), doc)
    return out


def _fetch_managed(iam: Any, arn: str) -> tuple[str, Any] | str:
    got = call(iam, "get_policy", PolicyArn=arn)
    if not got.ok:
        return got.reason(f"managed policy {arn} (iam:GetPolicy)")
    policy = got.data.get("Policy", {})
    version = call(iam, "get_policy_version", PolicyArn=arn,
                   VersionId=policy.get("DefaultVersionId", "v1"))
    if not version.ok:
        return version.reason(f"managed policy {arn} (iam:GetPolicyVersion)")
    name = str(policy.get("PolicyName", arn.rsplit("/", 1)[-1]))
    return name, version.data.get("PolicyVersion", {}).get("Document")


def _is_service_user(user: dict[str, Any]) -> bool:
    tags = {str(t.get("Key", "")).lower() for t in user.get("Tags") or []}
    return "/service/" in str(user.get("Path", "/")) or "service-account" in tags


def _last_used(iam: Any) -> dict[str, str]:
    users, _ = _pages(iam, "list_users", "Users")
    out = {}
    for user in users:
        when = user.get("PasswordLastUsed")
        if when is not None and hasattr(when, "date"):
            out[str(user["UserName"])] = when.date().isoformat()
    return out


class _IamReader:
    """Turns the IAM details into principals, memberships and identity-policy grants."""

    def __init__(self, iam: Any, facts: Facts, own_account: str | None,
                 buckets: Sequence[str]) -> None:
        self.iam = iam
        self.facts = facts
        self.own = own_account
        self.buckets = buckets
        self.managed: dict[str, tuple[str, Any]] = {}

    def problem(self, message: str) -> None:
        self.facts.problems.append(Problem(SOURCE, "iam", message))

    def read(self) -> None:
        details, answer = _details(self.iam)
        if answer is not None and answer.state == "unsupported":
            details, reasons = details_by_listing(self.iam)
            for reason in reasons:
                self.problem(f"cannot read IAM: {reason}")
        elif answer is not None:
            op = "iam:GetAccountAuthorizationDetails"
            self.problem(f"cannot read IAM: access denied ({op})" if answer.state == "denied"
                         else f"cannot read IAM: {answer.reason(op)}")
            return
        self.managed = _managed(details)
        last = _last_used(self.iam)
        for user in details["UserDetailList"]:
            self.user(user, last.get(str(user["UserName"])))
        for group in details["GroupDetailList"]:
            name = str(group["GroupName"])
            pid = f"aws:group/{name}"
            self.facts.add_principal(_principal(pid, "group", name))
            self.grants(pid, name, group, "GroupPolicyList")
        for role in details["RoleDetailList"]:
            self.role(role)

    def user(self, user: dict[str, Any], last_used: str | None) -> None:
        name = str(user["UserName"])
        pid = f"aws:user/{name}"
        self.facts.add_principal(Principal(pid, "user", name, SOURCE,
                                           human=not _is_service_user(user),
                                           last_used=last_used))
        for group in user.get("GroupList", []):
            self.facts.memberships.append(Membership(pid, f"aws:group/{group}", "member-of",
                                                     "iam:group-membership"))
        self.grants(pid, name, user, "UserPolicyList")

    def role(self, role: dict[str, Any]) -> None:
        name = str(role["RoleName"])
        pid = f"aws:role/{name}"
        self.facts.add_principal(_principal(pid, "role", name))
        trust = role.get("AssumeRolePolicyDocument")
        if trust is not None:
            try:
                edges, principals, unmapped = trust_memberships(
                    name, parse_document(trust), self.own)
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
        policies: list[tuple[str, dict[str, Any]]] = []
        for attached in entity.get("AttachedManagedPolicies", []):
            arn = str(attached.get("PolicyArn", ""))
            if arn not in self.managed:
                fetched = _fetch_managed(self.iam, arn)
                if isinstance(fetched, str):
                    self.problem(f"cannot read IAM: {fetched}")
                    continue
                self.managed[arn] = fetched
            policy_name, doc = self.managed[arn]
            self._add(policies, f"iam:policy/{policy_name or attached.get('PolicyName')}", doc)
        for inline in entity.get(inline_key, []):
            self._add(policies, f"iam:inline/{name}/{inline.get('PolicyName')}",
                      inline.get("PolicyDocument"))
        self.facts.grants.extend(identity_grants(pid, policies, self.buckets))

    def _add(self, policies: list[tuple[str, dict[str, Any]]], source: str, doc: Any) -> None:
        try:
            policies.append((source, parse_document(doc)))
        except ValueError:
            self.problem(f"{source} is not a valid JSON policy document")


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
    if pid == ANYONE:
        return True
    if not pid.startswith("aws:account/"):
        return False
    return pid.removeprefix("aws:account/") != own_account


def _collect_bucket(conn: Connection, facts: Facts, bucket: str,
                    account_bpa: dict[str, bool]) -> None:
    asset = f"s3://{bucket}"
    s3 = conn.client("s3", bucket_region(conn, bucket))
    own = conn.account_id

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
            found = bucket_policy_grants(bucket, doc, own)
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
    rules = _config(ownership, "OwnershipControls").get("Rules", [])
    enforced = any(r.get("ObjectOwnership") == "BucketOwnerEnforced" for r in rules)

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
    answer = call(conn.client("s3"), "list_buckets")
    if not answer.ok:
        facts.problems.append(Problem(SOURCE, "s3", answer.reason("the buckets (s3:ListBuckets)")))
        return list(wanted or [])
    listed = [str(b["Name"]) for b in answer.data.get("Buckets", [])]
    if wanted is None:
        return listed
    for name in wanted:
        if name not in listed:
            facts.problems.append(Problem(SOURCE, f"s3://{name}",
                                          "the bucket was not found among the buckets "
                                          "s3:ListBuckets lists"))
    return [b for b in wanted if b in listed]


def _account_bpa(conn: Connection, facts: Facts) -> dict[str, bool]:
    if not conn.access.aws or not conn.account_id:
        return bpa_flags(None)
    answer = call(conn.client("s3control"), "get_public_access_block",
                  AccountId=conn.account_id)
    _unread(facts, f"aws:{conn.account_id}", answer,
            "the account Public Access Block (s3control:GetPublicAccessBlock)")
    return bpa_flags(_config(answer, "PublicAccessBlockConfiguration"))


# =============================================================================================
# Entry point


def collect_aws(access: Access, *, buckets: Sequence[str] | None = None,
                observer: Observer | None = None) -> Facts:
    """Read IAM and S3 access of one AWS account (or S3-compatible store) into :class:`Facts`.

    ``buckets`` restricts the scan to those buckets (a name not listed becomes a Problem);
    ``observer(service, operation)`` sees every API call before it is sent. Raises
    :class:`~hipaa_audit.s3.client.S3SetupError` when the credentials, role or endpoint cannot
    be used; everything unreadable after that is a :class:`Problem` in the facts.
    """
    conn = Connection(access, observer)
    facts = Facts(sources=[SOURCE])
    own = conn.account_id
    system = f"aws:{own or 'unknown'}"
    names = _list_buckets(conn, facts, buckets)
    for name in names:
        facts.add_resource(Resource(f"s3://{name}", "bucket", phi=None, system=system))

    _IamReader(conn.client("iam"), facts, own, names).read()
    account_bpa = _account_bpa(conn, facts)
    for name in names:
        _collect_bucket(conn, facts, name, account_bpa)

    if buckets is not None:
        scope = {f"s3://{b}" for b in buckets}
        facts.grants = [g for g in facts.grants if bucket_of(g.resource) in scope]
    for grant in facts.grants:
        if grant.resource != bucket_of(grant.resource) and bucket_of(grant.resource) in \
                facts.resources:
            facts.add_resource(Resource(grant.resource, "prefix", phi=None, system=system))
    return facts


__all__ = ["IAM_ADMIN", "S3_ACTIONS", "PolicyFacts", "Who", "acl_grants", "bucket_of",
           "bucket_policy_grants", "collect_aws", "concrete_actions", "condition_texts",
           "details_by_listing", "identity_grants", "normalise", "parse_document",
           "policy_principals", "resource_ids", "s3_actions", "trust_memberships"]
