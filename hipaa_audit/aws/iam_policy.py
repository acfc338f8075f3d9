"""IAM policy language for S3: concrete actions, ARN levels and resource scopes.

Pure functions over policy documents (no I/O). The translation rules are described in
:mod:`hipaa_audit.permissions.aws`, which turns them into grants.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from hipaa_audit.aws.policy import (
    _list,
    load,
)

#: The pseudo-action standing for full IAM control (``iam:*`` or ``*``): admin of every bucket.
IAM_ADMIN = "iam:*"
#: IAM actions that let a principal grant itself more: they count like ``iam:*``.
IAM_ESCALATION: tuple[str, ...] = tuple(f"iam:{name}".lower() for name in (
    "AttachUserPolicy", "AttachGroupPolicy", "AttachRolePolicy", "PutUserPolicy",
    "PutGroupPolicy", "PutRolePolicy", "CreatePolicyVersion", "SetDefaultPolicyVersion",
    "AddUserToGroup", "UpdateAssumeRolePolicy", "CreateAccessKey", "PassRole"))
_IAM: frozenset[str] = frozenset({IAM_ADMIN, *IAM_ESCALATION})
#: Everywhere (a Deny on ``*``).
_EVERYWHERE = "*"

_LIST = ("ListBucket", "ListBucketVersions", "ListBucketMultipartUploads",
         "ListMultipartUploadParts")
#: Reads of object content: only these read PHI.
_READ = ("GetObject", "GetObjectVersion", "GetObjectTorrent", "GetObjectVersionTorrent",
         "GetObjectVersionForReplication")
#: Reads of metadata and configuration: they read no PHI, so they grant nothing here (listed so
#: that the table says it on purpose; see :data:`METADATA_READS`).
_METADATA = ("GetObjectAcl", "GetObjectVersionAcl", "GetObjectTagging", "GetObjectVersionTagging",
             "GetObjectAttributes", "GetObjectVersionAttributes", "GetObjectRetention",
             "GetObjectLegalHold", "GetBucketPolicy", "GetBucketPolicyStatus", "GetBucketAcl",
             "GetBucketLocation", "GetBucketVersioning", "GetBucketLogging", "GetBucketTagging",
             "GetBucketOwnershipControls", "GetBucketPublicAccessBlock",
             "GetBucketObjectLockConfiguration", "GetBucketNotification", "GetBucketCORS",
             "GetBucketWebsite", "GetEncryptionConfiguration", "GetLifecycleConfiguration",
             "GetReplicationConfiguration", "GetInventoryConfiguration",
             "GetAnalyticsConfiguration", "GetMetricsConfiguration",
             "GetIntelligentTieringConfiguration", "GetAccelerateConfiguration",
             "GetBucketRequestPayment")
#: The metadata and configuration reads (lower case, ``s3:`` prefix): no normalised action.
METADATA_READS: frozenset[str] = frozenset(f"s3:{name}".lower() for name in _METADATA)
_WRITE = ("PutObject", "PutObjectTagging", "PutObjectVersionTagging", "PutObjectRetention",
          "PutObjectLegalHold", "RestoreObject", "AbortMultipartUpload", "ReplicateObject")
_DELETE = ("DeleteObject", "DeleteObjectVersion", "DeleteObjectTagging",
           "DeleteObjectVersionTagging", "DeleteBucket")
_ADMIN = ("PutBucketPolicy", "DeleteBucketPolicy", "PutBucketAcl", "PutObjectAcl",
          "PutObjectVersionAcl", "PutEncryptionConfiguration", "PutBucketPublicAccessBlock",
          "PutBucketOwnershipControls", "DeleteBucketOwnershipControls", "PutBucketVersioning",
          "PutLifecycleConfiguration", "PutBucketObjectLockConfiguration",
          "PutReplicationConfiguration", "BypassGovernanceRetention", "PutBucketLogging",
          "PutAccountPublicAccessBlock")
#: Concrete S3 actions (lower case, ``s3:`` prefix) → normalised action.
S3_ACTIONS: dict[str, str] = {
    f"s3:{name}".lower(): action
    for action, names in (("list", _LIST), ("read", _READ), ("write", _WRITE),
                          ("delete", _DELETE), ("admin", _ADMIN))
    for name in names
}
#: ARN levels: an S3 action applies to the bucket, its objects or the account; IAM to IAM.
BUCKET, OBJECT, ACCOUNT, IAM = "bucket", "object", "account", "iam"
_S3_LEVELS = frozenset({BUCKET, OBJECT, ACCOUNT})
_BUCKET_HEADS = ("ListBucket", "GetBucket", "PutBucket", "DeleteBucket")
_OBJECT_OTHERS = ("AbortMultipartUpload", "ListMultipartUploadParts", "BypassGovernanceRetention")


def _level_of(name: str) -> str:
    if name == "PutAccountPublicAccessBlock":
        return ACCOUNT
    if name.startswith(_BUCKET_HEADS):
        return BUCKET
    return OBJECT if "Object" in name or name in _OBJECT_OTHERS else BUCKET


_S3_LEVEL: dict[str, str] = {f"s3:{name}".lower(): _level_of(name)
                             for names in (_LIST, _READ, _WRITE, _DELETE, _ADMIN)
                             for name in names}
#: What every pattern is matched against: the S3 table and the IAM actions that count.
_ALL_CONCRETE: tuple[str, ...] = (*S3_ACTIONS, IAM_ADMIN, *IAM_ESCALATION)


_S3_ARN = re.compile(r"^arn:aws[a-z-]*:s3:::([^/]+)(?:/(.*))?$")
#: A resource covering every IAM entity of one account (or of every account).
_IAM_ACCOUNT_WIDE = re.compile(r"^arn:(?:aws[a-z-]*|\*):(?:iam|\*)::(\d{12}|\*):\*$")


def _matches(patterns: Iterable[str], names: Iterable[str]) -> set[str]:
    lowered = [p.lower() for p in patterns]
    return {n for n in names if any(fnmatchcase(n, p) for p in lowered)}


def concrete_actions(patterns: Iterable[str], *, not_action: bool = False) -> frozenset[str]:
    """The concrete actions (lower case) of :data:`S3_ACTIONS` and the IAM ones a statement allows.

    The IAM ones are ``iam:*`` (standing for full IAM control) and :data:`IAM_ESCALATION`.
    ``patterns`` are the statement's ``Action`` (or, with ``not_action``, its ``NotAction``:
    then every concrete action none of them matches).
    """
    hit = _matches(patterns, _ALL_CONCRETE)
    return frozenset(set(_ALL_CONCRETE) - hit if not_action else hit)


def action_level(concrete: str) -> str:
    """The ARN level a concrete action applies to: ``bucket``, ``object``, ``account``, ``iam``."""
    return IAM if concrete in _IAM else _S3_LEVEL.get(concrete, BUCKET)


def normalise(concrete: Iterable[str]) -> frozenset[str]:
    """Map concrete actions (from :func:`concrete_actions`) to the normalised :data:`ACTIONS`."""
    return frozenset("admin" if c in _IAM else S3_ACTIONS[c]
                     for c in concrete if c in _IAM or c in S3_ACTIONS)


def s3_actions(patterns: Iterable[str], *, not_action: bool = False) -> frozenset[str]:
    """The normalised S3 actions that ``Action`` (or ``NotAction``) patterns grant on a bucket.

    >>> sorted(s3_actions(["s3:Get*"]))
    ['read']
    >>> sorted(s3_actions(["s3:*Object"]))
    ['delete', 'read', 'write']
    """
    return normalise(concrete_actions(patterns, not_action=not_action) - _IAM)


@dataclass(frozen=True, slots=True)
class Scope:
    """Where one ``Resource`` pattern reaches: a resource id at some ARN levels.

    ``resource`` is ``s3://B`` or ``s3://B/PREFIX`` (``*``: everywhere, only in a Deny's scope);
    ``levels`` are among ``bucket``, ``object``, ``account``, ``iam``; ``exact`` marks one
    object key (no wildcard) rather than everything under the prefix.
    """

    resource: str
    levels: frozenset[str]
    exact: bool = False


_BOTH = frozenset({BUCKET, OBJECT})
_BUCKET_ONLY = frozenset({BUCKET})
_OBJECT_ONLY = frozenset({OBJECT})


def _wild(text: str) -> int | None:
    """The index of the first ``*`` or ``?`` in ``text``, or None."""
    found = [i for i in (text.find("*"), text.find("?")) if i >= 0]
    return min(found) if found else None


def _rid(bucket: str, prefix: str) -> str:
    prefix = prefix.strip("/")
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


def _key_scope(bucket: str, key: str, *, strict: bool) -> Scope | None:
    """The object scope of ``arn:aws:s3:::BUCKET/KEY`` (at least / at most what it reaches)."""
    w = _wild(key)
    if w is None:
        if not key.strip("/"):
            return None if strict else Scope(f"s3://{bucket}", _OBJECT_ONLY)
        return Scope(_rid(bucket, key), _OBJECT_ONLY, exact=True)
    if strict:
        # only a single trailing ``*`` certainly covers everything under a prefix
        if w != len(key) - 1 or key[w] != "*":
            return None
        return Scope(_rid(bucket, key[:w]), _OBJECT_ONLY)
    head = key[:w]
    return Scope(_rid(bucket, head[:head.rfind("/")] if "/" in head else ""), _OBJECT_ONLY)


def _pattern_scopes(pattern: str, buckets: Sequence[str], *, strict: bool) -> list[Scope]:
    if pattern == "*":
        every = frozenset(_S3_LEVELS)
        return [Scope(_EVERYWHERE, every)] if strict else [
            Scope(f"s3://{b}", every) for b in buckets]
    m = _S3_ARN.match(pattern)
    if not m:
        return []
    bucket_pattern, key = m.groups()
    w = _wild(bucket_pattern)
    if w is None:
        if key is None:
            return [Scope(f"s3://{bucket_pattern}", _BUCKET_ONLY)]
        scope = _key_scope(bucket_pattern, key, strict=strict)
        return [scope] if scope is not None else []
    out: list[Scope] = []
    if strict:
        if bucket_pattern == "*" and key is None:
            return [Scope(_EVERYWHERE, _BOTH)]
        if bucket_pattern == "*" and key == "*":
            return [Scope(_EVERYWHERE, _OBJECT_ONLY)]
        for b in buckets:
            if not fnmatchcase(b, bucket_pattern):
                continue
            if key is None:
                # a trailing * also matches "/KEY": every object of the bucket
                out.append(Scope(f"s3://{b}",
                                 _BOTH if bucket_pattern.endswith("*") else _BUCKET_ONLY))
            elif (scope := _key_scope(b, key, strict=True)) is not None:
                out.append(scope)
        return out
    # a wildcard in the bucket part can match "/" and anything after it: every object of a
    # bucket its literal head matches (overstated rather than missed)
    head = bucket_pattern[:w] + "*"
    for b in buckets:
        levels = set()
        if key is None and fnmatchcase(b, bucket_pattern):
            levels.add(BUCKET)
        if fnmatchcase(b, head):
            levels.add(OBJECT)
        if levels:
            out.append(Scope(f"s3://{b}", frozenset(levels)))
    return out


def resource_scopes(patterns: Iterable[Any], buckets: Sequence[str], *,
                    not_resource: bool = False, strict: bool = False) -> list[Scope]:
    """Where ``Resource`` patterns reach, per ARN level (see :class:`Scope`).

    Wildcards expand against ``buckets`` (the listed buckets); an explicit bucket name is kept
    even when not listed. By default the scopes are *at most* what the patterns reach, as an
    Allow needs (a wildcard inside a key is cut to its parent prefix); with ``strict`` they are
    *at least* what they reach, as a Deny needs (``*`` stays ``*``; a key pattern counts only as
    ``P*``/``P/*`` or one exact key). With ``not_resource`` the patterns are a ``NotResource``:
    every listed bucket at the levels no pattern covers entirely. Non-S3 resources name nothing.
    """
    texts = [str(p) for p in patterns]
    if not_resource:
        excluded = [s for p in texts for s in _pattern_scopes(p, buckets, strict=True)]
        out: list[Scope] = []
        for b in buckets:
            rid = f"s3://{b}"
            levels = set(_S3_LEVELS)
            if any(fnmatchcase(f"arn:aws:s3:::{b}", p) for p in texts):
                levels.discard(BUCKET)
            for s in excluded:
                if s.resource in (_EVERYWHERE, rid) and not s.exact:
                    levels -= s.levels
            if levels:
                out.append(Scope(rid, frozenset(levels)))
        return out
    found: list[Scope] = []
    for p in texts:
        for scope in _pattern_scopes(p, buckets, strict=strict):
            if scope not in found:
                found.append(scope)
    return found


def resource_ids(patterns: Iterable[Any], buckets: Sequence[str], *,
                 not_resource: bool = False) -> list[str]:
    """The resource ids (``s3://B`` or ``s3://B/PREFIX``) that ``Resource`` patterns reach.

    The ids of :func:`resource_scopes` at the bucket or object level, each once.
    """
    out: list[str] = []
    for scope in resource_scopes(patterns, buckets, not_resource=not_resource):
        if scope.levels & _BOTH and scope.resource not in out:
            out.append(scope.resource)
    return out


def _covers_iam(statement: dict[str, Any]) -> bool:
    if "NotResource" in statement:
        return True
    return any(r == "*" or r.startswith(("arn:aws:iam:", "arn:*"))
               for r in (str(x) for x in _list(statement.get("Resource"))))


def _allowed_iam(statement: dict[str, Any], concrete: frozenset[str]) -> frozenset[str]:
    """The IAM actions of an Allow that count (CreateAccessKey on oneself is key rotation)."""
    iam = concrete & _IAM
    resources = [str(r) for r in _list(statement.get("Resource"))]
    if "NotResource" not in statement and resources and all(
            "${aws:username}" in r.lower() for r in resources):
        iam -= {"iam:createaccesskey"}
    return iam if iam and _covers_iam(statement) else frozenset()


def _denies_all_iam(statement: dict[str, Any], own_account: str | None) -> bool:
    """True when a Deny's resources cover every IAM entity of the own account."""
    for r in (str(x) for x in _list(statement.get("Resource"))):
        if r in ("*", "arn:*"):
            return True
        m = _IAM_ACCOUNT_WIDE.match(r)
        if m and (m.group(1) == "*" or own_account is None or m.group(1) == own_account):
            return True
    return False


def bucket_of(resource: str) -> str:
    """``s3://B`` for ``s3://B`` or ``s3://B/PREFIX``."""
    return "s3://" + resource.removeprefix("s3://").split("/", 1)[0]


def parse_document(value: Any) -> dict[str, Any]:
    """A policy document as IAM returns it: a dict, a JSON string or a URL-encoded JSON string."""
    if isinstance(value, dict):
        return value
    text = str(value)
    try:
        return load(text)
    except ValueError:
        return load(urllib.parse.unquote(text))
