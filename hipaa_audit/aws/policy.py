"""Read bucket policies and ACLs the way S3 evaluates them (pure functions, no I/O).

This is the one policy reader of ``scan s3`` and ``scan permissions``: who a statement names
(:func:`read_principals`), whether a wildcard principal is confined (:func:`confinement`) and
whether a statement is public are decided here, so the two scans cannot disagree on a policy.

The traps other scanners fell into are handled: a TLS-only deny may use ``Bool`` or
``BoolIfExists`` with the string ``"false"`` or a JSON ``false``; ``Principal "*"`` with a
condition that confines it (a VPC endpoint, the organisation, a source account) is not public,
but a negated (``StringNotEquals``) or ``...IfExists`` condition confines nothing (a request
without the key passes it); an Allow with ``NotPrincipal`` is open to everyone not listed;
``s3:TlsVersion`` alone does not force TLS (a plaintext request has no TLS version, so a
``NumericLessThan`` on it does not match). A principal that names nobody who can be listed (a
``${...}`` placeholder left in a template, the unique id ``AROA...``/``AIDA...`` IAM shows in
place of a deleted role or user, a federated provider, a malformed value) is *unresolvable*:
both scans report it as unverifiable, never skip it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

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
_ACCOUNT_ID = re.compile(r"^\d{12}$")
_IAM_ARN = re.compile(
    r"^arn:aws[a-z-]*:(iam|sts)::(\d{12}|\*)?:(root|user|role|assumed-role)(?:/(.*))?$")
#: IAM unique ids (users AIDA, roles AROA, ...): IAM shows one in a policy in place of the ARN
#: of a user or role that was deleted.
_UNIQUE_ID = re.compile(r"^A(?:IDA|ROA|IPA|NPA|NVA|GPA|SIA|KIA)[A-Z0-9]{12,}$")
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


def _condition_values(statement: dict[str, Any], operators: tuple[str, ...],
                      key: str) -> Iterator[Any]:
    """The values the statement's Condition gives ``key`` (case-insensitive) under ``operators``."""
    condition = statement.get("Condition")
    if not isinstance(condition, dict):
        return
    for operator in operators:
        block = condition.get(operator)
        if isinstance(block, dict):
            yield from (value for k, value in block.items() if str(k).lower() == key)


def _denies_plaintext(statement: dict[str, Any]) -> bool:
    return any(_is_false(value) for value in
               _condition_values(statement, ("Bool", "BoolIfExists"), "aws:securetransport"))


def _min_tls(statement: dict[str, Any]) -> str | None:
    for value in _condition_values(statement, ("NumericLessThan", "NumericLessThanIfExists"),
                                   "s3:tlsversion"):
        if _list(value):
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


def confinement(statement: dict[str, Any]) -> tuple[str, ...]:
    """The conditions (as :func:`condition_texts`) that confine a wildcard principal.

    A condition confines when its key names the caller or its network (:data:`LIMITING_KEYS`),
    its operator is positive (not ``...Not...``, not ``...IfExists``: a request without the key
    would pass those) and its values are not open (``*``, ``0.0.0.0/0``). Empty: not confined.
    """
    condition = statement.get("Condition")
    if not isinstance(condition, dict):
        return ()
    out: list[str] = []
    for operator, block in condition.items():
        op = str(operator)
        if not isinstance(block, dict) or "Not" in op or op.endswith("IfExists"):
            continue
        for key, value in block.items():
            k = str(key).lower()
            values = [_text(v) for v in _list(value)]
            if k not in LIMITING_KEYS or not values or all(v == "*" for v in values):
                continue
            if k in ("aws:sourceip", "aws:vpcsourceip") and all(v in OPEN_RANGES
                                                                 for v in values):
                continue
            out.append(f"{op} {key}={','.join(sorted(values))}")
    return tuple(sorted(out))


PrincipalWhat = Literal["anyone", "confined", "account", "user", "role", "assumed-role",
                        "service", "canonical", "unresolvable"]


@dataclass(frozen=True, slots=True)
class PolicyPrincipal:
    """One value of a statement's ``Principal`` (or ``NotPrincipal``), as both scans read it.

    ``what`` is ``anyone`` (``*``, or an Allow's ``NotPrincipal``, with no confining
    condition), ``confined`` (the same, confined by :func:`confinement`), ``account`` (an
    account id or its root), ``user``/``role``/``assumed-role`` (an IAM or STS ARN; ``name`` is
    what follows the type, path included), ``service``, ``canonical`` (a canonical user id) or
    ``unresolvable`` (``why`` says why). ``account`` is the 12-digit account when one is named.
    """

    kind: str
    value: str
    what: PrincipalWhat
    account: str | None = None
    name: str = ""
    why: str = ""
    confined_by: tuple[str, ...] = ()

    def text(self) -> str:
        """``Kind: value``, with the reason when unresolvable."""
        return f"{self.kind}: {self.value}" + (f" ({self.why})" if self.why else "")


def _unresolvable(kind: str, value: str, why: str) -> PolicyPrincipal:
    return PolicyPrincipal(kind, value[:200], "unresolvable", why=why)


def _read_aws(value: str, confined: tuple[str, ...]) -> PolicyPrincipal:
    if value == "*":
        return PolicyPrincipal("AWS", value, "confined" if confined else "anyone",
                               confined_by=confined)
    if "${" in value:
        return _unresolvable("AWS", value, "a ${...} placeholder, not a principal: the policy "
                             "was copied from a template and never filled in")
    if _UNIQUE_ID.match(value):
        return _unresolvable("AWS", value, "an IAM unique id, which IAM shows in place of a "
                             "user or role that was deleted")
    if _ACCOUNT_ID.match(value):
        return PolicyPrincipal("AWS", value, "account", account=value)
    m = _IAM_ARN.match(value)
    if not m or not m.group(2) or m.group(2) == "*":
        return _unresolvable("AWS", value, "not an account id or an IAM user or role ARN")
    _service, account, what, rest = m.groups()
    if what == "root":
        return PolicyPrincipal("AWS", value, "account", account=account)
    if not rest:
        return _unresolvable("AWS", value, "an ARN without a user or role name")
    kinds: dict[str, PrincipalWhat] = {"user": "user", "role": "role",
                                       "assumed-role": "assumed-role"}
    return PolicyPrincipal("AWS", value, kinds[what], account=account, name=rest)


def read_principals(statement: dict[str, Any]) -> list[PolicyPrincipal]:
    """Who one statement names, each value classified (see :class:`PolicyPrincipal`).

    A statement without ``Principal`` (an identity policy's) names no one: ``[]``.
    """
    confined = confinement(statement)
    if "NotPrincipal" in statement:
        # Allow + NotPrincipal: everyone but those listed; Deny + NotPrincipal: the same crowd
        return [PolicyPrincipal("NotPrincipal", "everyone not listed",
                                "confined" if confined else "anyone", confined_by=confined)]
    value = statement.get("Principal")
    if value is None:
        return []
    if value == "*":
        return [PolicyPrincipal("Principal", "*", "confined" if confined else "anyone",
                                confined_by=confined)]
    if not isinstance(value, dict):
        return [_unresolvable("Principal", repr(value), "not * or a principal map")]
    out: list[PolicyPrincipal] = []
    for kind, items in value.items():
        for item in (str(x) for x in _list(items)):
            if kind == "AWS":
                p = _read_aws(item, confined)
            elif kind == "Service":
                p = PolicyPrincipal("Service", item, "service", name=item)
            elif kind == "CanonicalUser":
                p = PolicyPrincipal("CanonicalUser", item, "canonical", name=item)
            elif kind == "Federated":
                p = _unresolvable("Federated", item, "an identity provider: who signs in "
                                  "through it cannot be listed")
            else:
                p = _unresolvable(str(kind), item, "an unknown principal type")
            if p not in out:
                out.append(p)
    return out


def public_statements(doc: dict[str, Any]) -> list[str]:
    """Describe each Allow statement open to everyone without a confining condition."""
    out = []
    for i, st in enumerate(statements(doc), 1):
        if st.get("Effect") == "Allow" and any(p.what == "anyone" for p in read_principals(st)):
            sid = st.get("Sid") or f"statement {i}"
            actions = ", ".join(_actions(st)) or "NotAction " + ", ".join(
                str(a) for a in _list(st.get("NotAction")))
            out.append(f"{sid}: {actions}")
    return out


def principal_accounts(doc: dict[str, Any]) -> dict[str, list[str]]:
    """Map each AWS account named in an Allow principal to the actions it is allowed."""
    out: dict[str, list[str]] = {}
    for st in statements(doc):
        if st.get("Effect") != "Allow":
            continue
        for p in read_principals(st):
            if p.account is not None:
                actions = out.setdefault(p.account, [])
                actions.extend(a for a in _actions(st) if a not in actions)
    return out


def unresolved_principals(doc: dict[str, Any]) -> list[str]:
    """The principals of any statement that name nobody who can be listed, as texts."""
    out: list[str] = []
    for st in statements(doc):
        for p in read_principals(st):
            if p.what == "unresolvable" and p.text() not in out:
                out.append(p.text())
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
