"""Read IAM's account authorization details through a read-only client.

``iam:GetAccountAuthorizationDetails`` (boto3's paginator), or the same facts from the
``List*``/``Get*`` calls when a store does not support it; every failure is an
:class:`~hipaa_audit.aws.client.Answer`, never an exception.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from hipaa_audit.aws.client import Answer, call, classify
from hipaa_audit.aws.policy import (
    _list,
)

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient

_ARN_ACCOUNT = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):")


def _paginate(client: Any, operation: str, **params: Any
              ) -> tuple[list[dict[str, Any]], Answer | None]:
    """Every page of ``operation`` (boto3's paginator; one call when there is none)."""
    pages: list[dict[str, Any]] = []
    try:
        if client.can_paginate(operation):
            for page in client.get_paginator(operation).paginate(**params):
                page.pop("ResponseMetadata", None)
                pages.append(page)
        else:
            answer = call(client, operation, **params)
            if not answer.ok:
                return pages, answer
            pages.append(answer.data)
    except (ClientError, BotoCoreError, ResponseParserError) as exc:
        return pages, classify(exc)
    return pages, None


def _pages(client: Any, operation: str, key: str, **params: Any) -> tuple[list[Any], Answer | None]:
    """Every item under ``key`` across the pages; the failing answer, if one failed."""
    pages, bad = _paginate(client, operation, **params)
    return [item for page in pages for item in _list(page.get(key))], bad


_DETAIL_KEYS = ("UserDetailList", "GroupDetailList", "RoleDetailList", "Policies")


def _details(iam: IAMClient) -> tuple[dict[str, list[Any]], Answer | None]:
    pages, bad = _paginate(iam, "get_account_authorization_details",
                           Filter=["User", "Group", "Role", "LocalManagedPolicy",
                                   "AWSManagedPolicy"])
    return {k: [item for page in pages for item in _list(page.get(k))]
            for k in _DETAIL_KEYS}, bad


def _inline(iam: IAMClient, kind: str, name: str, problems: list[str]) -> list[dict[str, Any]]:
    """Inline policies of one user/group/role via List*Policies + Get*Policy (the fallback)."""
    names, bad = _pages(iam, f"list_{kind}_policies", "PolicyNames",
                        **{f"{kind.capitalize()}Name": name})
    if bad is not None:
        problems.append(bad.reason(f"inline policies of {kind} {name} "
                                   f"(iam:List{kind.capitalize()}Policies)"))
    out: list[dict[str, Any]] = []
    for policy in names:
        if not isinstance(policy, str) or not policy:
            out.append({})  # the details reader reports the shape
            continue
        got = call(iam, f"get_{kind}_policy", **{f"{kind.capitalize()}Name": name,
                                                 "PolicyName": policy})
        if got.ok:
            out.append({"PolicyName": policy, "PolicyDocument": got.data.get("PolicyDocument")})
        else:
            problems.append(got.reason(f"inline policy {policy} of {kind} {name} "
                                       f"(iam:Get{kind.capitalize()}Policy)"))
    return out


def _attached(iam: IAMClient, kind: str, name: str, problems: list[str]) -> list[Any]:
    items, bad = _pages(iam, f"list_attached_{kind}_policies", "AttachedPolicies",
                        **{f"{kind.capitalize()}Name": name})
    if bad is not None:
        problems.append(bad.reason(f"attached policies of {kind} {name} "
                                   f"(iam:ListAttached{kind.capitalize()}Policies)"))
    return items


def _entity_name(entity: Any, key: str) -> str | None:
    value = entity.get(key) if isinstance(entity, dict) else None
    return value if isinstance(value, str) and value else None


def details_by_listing(iam: IAMClient) -> tuple[dict[str, list[Any]], list[str]]:
    """The ``GetAccountAuthorizationDetails`` shape, read with List*/Get* calls (the fallback).

    Returns the details (without ``Policies``: managed documents are fetched on demand) and the
    reasons of every call that failed. An entry of an unexpected shape is passed on unchanged,
    for the details reader to skip and report.
    """
    problems: list[str] = []
    out: dict[str, list[Any]] = {"UserDetailList": [], "GroupDetailList": [],
                                 "RoleDetailList": [], "Policies": []}
    users, bad = _pages(iam, "list_users", "Users")
    if bad is not None:
        problems.append(bad.reason("IAM users (iam:ListUsers)"))
    for user in users:
        name = _entity_name(user, "UserName")
        if name is None:
            out["UserDetailList"].append(user)
            continue
        groups, bad = _pages(iam, "list_groups_for_user", "Groups", UserName=name)
        if bad is not None:
            problems.append(bad.reason(f"groups of user {name} (iam:ListGroupsForUser)"))
        tags, bad = _pages(iam, "list_user_tags", "Tags", UserName=name)
        out["UserDetailList"].append({
            **user, "GroupList": [g.get("GroupName") if isinstance(g, dict) else g
                                  for g in groups], "Tags": tags,
            "AttachedManagedPolicies": _attached(iam, "user", name, problems),
            "UserPolicyList": _inline(iam, "user", name, problems)})
    for kind, Kind in (("group", "Group"), ("role", "Role")):
        entities, bad = _pages(iam, f"list_{kind}s", f"{Kind}s")
        if bad is not None:
            problems.append(bad.reason(f"IAM {kind}s (iam:List{Kind}s)"))
        for entity in entities:
            name = _entity_name(entity, f"{Kind}Name")
            if name is None:
                out[f"{Kind}DetailList"].append(entity)
                continue
            out[f"{Kind}DetailList"].append({
                **entity, "AttachedManagedPolicies": _attached(iam, kind, name, problems),
                f"{Kind}PolicyList": _inline(iam, kind, name, problems)})
    return out, problems


def _last_used_of(users: Iterable[Any]) -> dict[str, str]:
    """User name → ISO date of ``PasswordLastUsed`` (entries without it are left out)."""
    out = {}
    for user in users:
        name = _entity_name(user, "UserName")
        when = user.get("PasswordLastUsed") if name is not None else None
        if name is not None and when is not None and hasattr(when, "date"):
            out[name] = when.date().isoformat()
    return out


def _last_used(iam: IAMClient) -> dict[str, str]:
    users, _ = _pages(iam, "list_users", "Users")
    return _last_used_of(users)


def _account_of(entities: Iterable[dict[str, Any]]) -> str | None:
    """The account most ARNs of the IAM answer belong to (AWS-managed policies aside)."""
    seen: Counter[str] = Counter()
    for entity in entities:
        m = _ARN_ACCOUNT.match(str(entity.get("Arn", "")))
        if m:
            seen[m.group(1)] += 1
    return seen.most_common(1)[0][0] if seen else None
