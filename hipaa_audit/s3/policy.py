"""Read bucket policies and ACLs the way S3 evaluates them (pure functions, no I/O).

The traps other scanners fell into are handled: a TLS-only deny may use ``Bool`` or
``BoolIfExists`` with the string ``"false"`` or a JSON ``false``; ``Principal "*"`` with a
condition that confines it (a VPC endpoint, the organisation, a source account) is not public;
``s3:TlsVersion`` alone does not force TLS (a plaintext request has no TLS version, so a
``NumericLessThan`` on it does not match).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
PUBLIC_GROUPS = {ALL_USERS: "everyone (AllUsers)",
                 AUTHENTICATED_USERS: "any AWS account (AuthenticatedUsers)"}
#: Condition keys that confine a wildcard principal to known callers.
LIMITING_KEYS = frozenset(k.lower() for k in (
    "aws:SourceVpce", "aws:SourceVpc", "aws:SourceIp", "aws:VpcSourceIp", "aws:PrincipalOrgID",
    "aws:PrincipalOrgPaths", "aws:PrincipalAccount", "aws:PrincipalArn", "aws:SourceAccount",
    "aws:SourceArn", "aws:SourceOwner", "aws:SourceOrgID", "aws:SourceOrgPaths", "aws:userid",
    "aws:username", "aws:PrincipalServiceName", "s3:DataAccessPointAccount",
    "s3:DataAccessPointArn",
))
#: Source ranges that confine nothing.
OPEN_RANGES = frozenset({"0.0.0.0/0", "::/0"})
_ACCOUNT = re.compile(r"^(?:arn:aws[a-z-]*:(?:iam|sts)::)?(\d{12})(?::|$)")
BPA_FLAGS = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def load(policy: str | dict[str, Any]) -> dict[str, Any]:
    """Parse a policy document (the ``Policy`` string of GetBucketPolicy); ValueError if bad."""
    doc = json.loads(policy) if isinstance(policy, str) else policy
    if not isinstance(doc, dict):
        raise ValueError("the policy is not a JSON object")
    return doc


def statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The statements of a policy (a single statement object or a list)."""
    return [s for s in _list(doc.get("Statement")) if isinstance(s, dict)]


def wildcard_principal(statement: dict[str, Any]) -> bool:
    """True when the statement's principal is everyone: ``"*"`` or ``{"AWS": "*"}``."""
    principal = statement.get("Principal")
    if principal == "*":
        return True
    if isinstance(principal, dict):
        return "*" in [str(p) for p in _list(principal.get("AWS"))]
    return False


def _actions(statement: dict[str, Any]) -> list[str]:
    return [str(a) for a in _list(statement.get("Action"))]


def _covers_all_actions(statement: dict[str, Any]) -> bool:
    return any(a in ("*", "s3:*") or a.lower() == "s3:*" for a in _actions(statement))


def _resources(statement: dict[str, Any]) -> list[str]:
    return [str(r) for r in _list(statement.get("Resource"))]


def _covers(resources: list[str], arn: str) -> bool:
    return any(r == "*" or r == arn or (r.endswith("*") and arn.startswith(r[:-1]))
               for r in resources)


def _is_false(value: Any) -> bool:
    return any(v is False or (isinstance(v, str) and v.lower() == "false") for v in _list(value))


def _condition_keys(statement: dict[str, Any]) -> dict[str, list[Any]]:
    """Map each condition key (lower case) to its values, across operators."""
    out: dict[str, list[Any]] = {}
    condition = statement.get("Condition")
    if not isinstance(condition, dict):
        return out
    for block in condition.values():
        if isinstance(block, dict):
            for key, value in block.items():
                out.setdefault(str(key).lower(), []).extend(_list(value))
    return out


def _denies_plaintext(statement: dict[str, Any]) -> bool:
    condition = statement.get("Condition")
    if not isinstance(condition, dict):
        return False
    for operator in ("Bool", "BoolIfExists"):
        block = condition.get(operator)
        if isinstance(block, dict):
            for key, value in block.items():
                if str(key).lower() == "aws:securetransport" and _is_false(value):
                    return True
    return False


def _min_tls(statement: dict[str, Any]) -> str | None:
    condition = statement.get("Condition")
    if not isinstance(condition, dict):
        return None
    for operator in ("NumericLessThan", "NumericLessThanIfExists"):
        block = condition.get(operator)
        if isinstance(block, dict):
            for key, value in block.items():
                if str(key).lower() == "s3:tlsversion" and _list(value):
                    return str(_list(value)[0])
    return None


@dataclass(frozen=True, slots=True)
class TlsVerdict:
    """Whether the policy denies plaintext requests, and what it does instead."""

    enforced: bool
    detail: str
    min_tls: str | None = None


def tls_only(doc: dict[str, Any], bucket: str) -> TlsVerdict:
    """Judge whether the policy denies every action over plain HTTP on the bucket and objects."""
    bucket_arn = f"arn:aws:s3:::{bucket}"
    object_arn = f"{bucket_arn}/*"
    min_tls = next((m for s in statements(doc) if s.get("Effect") == "Deny"
                    and (m := _min_tls(s))), None)
    partial: list[str] = []
    for st in statements(doc):
        if st.get("Effect") != "Deny" or not _denies_plaintext(st):
            continue
        if "NotAction" in st or "NotResource" in st or "NotPrincipal" in st:
            partial.append("it uses NotAction/NotResource/NotPrincipal")
            continue
        gaps = []
        if not wildcard_principal(st):
            gaps.append("it applies to named principals only")
        if not _covers_all_actions(st):
            gaps.append(f"it denies only {', '.join(_actions(st)) or 'no action'}")
        missing = [r for r in (bucket_arn, object_arn) if not _covers(_resources(st), r)]
        if missing:
            gaps.append(f"it does not cover {' and '.join(missing)}")
        if not gaps:
            return TlsVerdict(True, "a Deny of every action when aws:SecureTransport is false",
                              min_tls)
        partial.append("; ".join(gaps))
    if partial:
        return TlsVerdict(False, "a plaintext deny exists but " + " / ".join(partial), min_tls)
    if min_tls is not None:
        return TlsVerdict(False, f"only TLS versions below {min_tls} are denied: a plaintext "
                          "request has no TLS version and is not denied", min_tls)
    return TlsVerdict(False, "no statement denies requests when aws:SecureTransport is false")


def _limiting(statement: dict[str, Any]) -> bool:
    keys = _condition_keys(statement)
    for key, values in keys.items():
        if key not in LIMITING_KEYS:
            continue
        if key in ("aws:sourceip", "aws:vpcsourceip") and all(
                str(v) in OPEN_RANGES for v in values):
            continue
        if values and all(str(v) == "*" for v in values):
            continue
        return True
    return False


def public_statements(doc: dict[str, Any]) -> list[str]:
    """Describe each Allow statement open to everyone without a confining condition."""
    out = []
    for i, st in enumerate(statements(doc), 1):
        if st.get("Effect") == "Allow" and wildcard_principal(st) and not _limiting(st):
            sid = st.get("Sid") or f"statement {i}"
            actions = ", ".join(_actions(st)) or "NotAction " + ", ".join(
                str(a) for a in _list(st.get("NotAction")))
            out.append(f"{sid}: {actions}")
    return out


def _principal_values(statement: dict[str, Any]) -> list[str]:
    principal = statement.get("Principal")
    if isinstance(principal, dict):
        return [str(p) for p in _list(principal.get("AWS"))]
    return []


def principal_accounts(doc: dict[str, Any]) -> dict[str, list[str]]:
    """Map each AWS account named in an Allow principal to the actions it is allowed."""
    out: dict[str, list[str]] = {}
    for st in statements(doc):
        if st.get("Effect") != "Allow":
            continue
        for value in _principal_values(st):
            m = _ACCOUNT.match(value)
            if m:
                actions = out.setdefault(m.group(1), [])
                actions.extend(a for a in _actions(st) if a not in actions)
    return out


def public_grants(grants: Iterable[dict[str, Any]]) -> list[str]:
    """Describe the ACL grants to everyone or to any AWS account (``permission to whom``)."""
    out = []
    for grant in grants:
        grantee = grant.get("Grantee") or {}
        who = PUBLIC_GROUPS.get(str(grantee.get("URI", "")))
        if who is not None:
            text = f"{grant.get('Permission', '?')} to {who}"
            if text not in out:
                out.append(text)
    return out


def bpa_flags(config: dict[str, Any] | None) -> dict[str, bool]:
    """The four Block Public Access flags of a configuration (absent: all false)."""
    config = config or {}
    return {flag: bool(config.get(flag, False)) for flag in BPA_FLAGS}
