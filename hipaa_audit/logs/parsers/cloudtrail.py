"""AWS CloudTrail records (``{"Records": [...]}``, a bare list or NDJSON) into event rows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from json.encoder import encode_basestring_ascii as _json_text
from pathlib import Path
from typing import Any

from hipaa_audit.logs.parsers.common import (
    MASKED_LABEL,
    _Bad,
    _Collector,
    _dict,
    _Fingerprints,
    _int,
    _Row,
    _str,
    may_identify,
)
from hipaa_audit.logs.parsers.jsonstream import _json_record_rows
from hipaa_audit.logs.schema import (
    DETAIL_ROOTS,
    SECRET_KEY,
)

#: CloudTrail detail (``errorMessage``, ``additionalEventData``, ``responseElements``): at most
#: this many leaves per record, this many levels deep; a longer value is fingerprinted.
MAX_DETAIL_LEAVES = 32
MAX_DETAIL_DEPTH = 6
MAX_DETAIL_TEXT = 256


# AWS CloudTrail

_CT_ACTIONS = {
    "ConsoleLogin": "login",
    "GetObject": "download", "SelectObjectContent": "download",
    "PutObject": "create", "CompleteMultipartUpload": "create", "PostObject": "create",
    "CopyObject": "export",
    "DeleteObject": "delete", "DeleteObjects": "delete", "DeleteBucket": "delete",
    "DeleteObjectVersion": "delete",
    "PutBucketAcl": "permission-change", "PutObjectAcl": "permission-change",
    "PutPublicAccessBlock": "permission-change", "DeletePublicAccessBlock": "permission-change",
    "PutBucketPublicAccessBlock": "permission-change",
    "DeleteBucketPublicAccessBlock": "permission-change",
    "PutAccountPublicAccessBlock": "permission-change",
    "DeleteAccountPublicAccessBlock": "permission-change",
    "PutBucketOwnershipControls": "permission-change",
    "CreateAccessKey": "permission-change", "UpdateAccessKey": "permission-change",
    "AddUserToGroup": "permission-change", "RemoveUserFromGroup": "permission-change",
    "CreateUser": "permission-change", "DeleteUser": "permission-change",
    "CreateRole": "permission-change", "DeleteRole": "permission-change",
    "UpdateAssumeRolePolicy": "permission-change", "CreatePolicy": "permission-change",
    "CreatePolicyVersion": "permission-change", "SetDefaultPolicyVersion": "permission-change",
    "CreateLoginProfile": "permission-change", "UpdateLoginProfile": "permission-change",
    "PutBucketEncryption": "config-change", "DeleteBucketEncryption": "config-change",
    "PutBucketVersioning": "config-change", "PutBucketLogging": "config-change",
    "PutBucketReplication": "config-change", "DeleteBucketReplication": "config-change",
    "PutObjectLockConfiguration": "config-change", "PutBucketWebsite": "config-change",
    "UpdateTrail": "config-change", "PutEventSelectors": "config-change",
    "PutInsightSelectors": "config-change", "CreateTrail": "config-change",
    "StopLogging": "audit-stop", "DeleteTrail": "audit-stop",
    "StartLogging": "audit-start",
}
_CT_TARGET_KEYS = ("bucketName", "policyName", "roleName", "groupName", "userName",
                   "trailName", "policyArn")


def _cloudtrail_action(event: str) -> str:
    action = _CT_ACTIONS.get(event)
    if action is not None:
        return action
    action = _OTHER_ACTIONS.get(event)
    if action is None:
        action = _action_by_prefix(event)
        if len(event) <= MAX_DETAIL_TEXT:
            if len(_OTHER_ACTIONS) >= _DETAIL_KEYS_KEPT:
                _OTHER_ACTIONS.clear()
            _OTHER_ACTIONS[event] = action
    return action


#: The actions of event names not in :data:`_CT_ACTIONS` met so far (names repeat); bounded.
_OTHER_ACTIONS: dict[str, str] = {}


def _action_by_prefix(event: str) -> str:
    if event.startswith(("PutBucketLifecycle", "DeleteBucketLifecycle")):
        return "config-change"
    if event.startswith(("Attach", "Detach")) or (
            event.startswith(("Put", "Delete")) and event.endswith("Policy")):
        return "permission-change"
    if event.startswith(("Describe", "Get", "List", "Head", "Lookup")):
        return "query"
    return "other"


#: The path of the roles IAM Identity Center makes for its permission sets: people sign in to
#: them, and the session name is the person's sign-in name.
_SSO_ROLE_PATH = "/aws-reserved/sso.amazonaws.com/"


def cloudtrail_principal(ident: dict[str, Any]) -> tuple[str | None, str | None]:
    """The user and role of a CloudTrail ``userIdentity``.

    An ``AssumedRole``'s user is the role itself, the ARN of the session issuer
    (``arn:aws:iam::ACCOUNT:role/NAME``): the session name (a CI job id, an instance id, a
    caller-chosen label) is a detail of one session, so each CI job or instance launch is not a
    new user. The one exception is a role of IAM Identity Center (``AWSReservedSSO_``, under
    ``/aws-reserved/sso.amazonaws.com/``): people share the permission set's role and the session
    name is the person, so the user is the person's session ARN. Other identities are their
    ``userName``, else their ARN, principal id or invoking service.
    """
    arn = _str(ident.get("arn"))
    user = _str(ident.get("userName"))
    role = None
    if ident.get("type") == "AssumedRole" or (arn and ":assumed-role/" in arn):
        issuer = _dict(_dict(ident.get("sessionContext")).get("sessionIssuer"))
        issuer_arn = _str(issuer.get("arn"))
        role = _str(issuer.get("userName"))
        parts = arn.split("/") if arn and ":assumed-role/" in arn else []
        if role is None and len(parts) > 2:
            role = parts[-2]
        if issuer_arn is None and len(parts) > 2:
            account = arn.split(":")[4] if arn and arn.count(":") >= 5 else ""
            issuer_arn = f"arn:aws:iam::{account}:role/{parts[-2]}"
        people = (issuer_arn is not None and _SSO_ROLE_PATH in issuer_arn) or (
            role or "").startswith("AWSReservedSSO_")
        if people and arn:
            return arn, role
        if issuer_arn is not None:
            return issuer_arn, role
    if user is None:
        user = arn or _str(ident.get("principalId")) or _str(ident.get("invokedBy"))
    return user, role


def _cloudtrail_row(rec: dict[str, Any], fp: _Fingerprints, line: int, fallback_id: str) -> _Row:
    time = _str(rec.get("eventTime"))
    if time is None:
        if "digestStartTime" in rec:
            raise _Bad("CloudTrail digest, not a log record")
        raise _Bad("no eventTime")
    event = _str(rec.get("eventName"))
    if event is None:
        raise _Bad("no eventName")
    ident = _dict(rec.get("userIdentity"))
    user, role = cloudtrail_principal(ident)
    response = _dict(rec.get("responseElements"))
    failed = bool(rec.get("errorCode")) or response.get("ConsoleLogin") == "Failure"
    params = _dict(rec.get("requestParameters"))
    extra = _dict(rec.get("additionalEventData"))
    action = _cloudtrail_action(event)

    target = None
    for key in _CT_TARGET_KEYS:
        found = params.get(key)
        if found is None:
            continue
        target = _str(found)
        if target:
            if key == "policyArn":
                target = target.rsplit("/", 1)[-1]
            break
    if target is None and rec.get("eventSource") == "cloudtrail.amazonaws.com":
        target = _str(params.get("name"))
        if target and target.startswith("arn:"):
            target = target.rsplit("/", 1)[-1]

    bytes_out = _int(extra.get("bytesTransferredOut"))
    bytes_in = _int(extra.get("bytesTransferredIn"))
    if event.startswith("Get") or action == "download":
        size = bytes_out
    elif event.startswith(("Put", "Upload", "Post")):
        size = bytes_in
    else:
        size = bytes_out or bytes_in or None

    bucket = _str(params.get("bucketName"))
    object_key = params.get("key")
    objects: int | None = None
    study = None
    if event == "DeleteObjects":
        listed = _dict(params.get("delete")).get("Object")
        if isinstance(listed, list):
            objects = len(listed)
        elif isinstance(listed, dict):
            objects = 1
        else:
            resources = rec.get("resources")
            count = sum(1 for r in resources if isinstance(r, dict)
                        and r.get("type") == "AWS::S3::Object") if isinstance(
                resources, list) else 0
            objects = count or None
    elif isinstance(object_key, str) and object_key:
        objects = 1
    if bucket and isinstance(object_key, str) and object_key:
        folders = [p for p in object_key.split("/") if p][:-1]
        if folders:
            study = fp("/".join(folders[:2]))
    event_key = _str(rec.get("eventID"))
    if event_key is None or may_identify(event_key):
        event_key = fallback_id
    # the event name, source and target are AWS API and resource names (buckets, policies,
    # roles), named by administrators: kept; the user agent is free text a client sends
    return _Row(time, user, role, action, "failure" if failed else "success", None, None, study,
                objects, size, _str(rec.get("sourceIPAddress")),
                fp.label(_str(rec.get("userAgent"))), None, event_key, event, target,
                _str(rec.get("eventSource")), line, fp.label(_str(rec.get("errorCode"))),
                fp.label(_str(ident.get("type"))), _cloudtrail_detail(rec, fp))


def _cloudtrail_detail(rec: dict[str, Any], fp: _Fingerprints) -> str | None:
    """A record's ``errorMessage``, ``additionalEventData`` and ``responseElements``, screened.

    JSON text of their scalar leaves by dotted path (``responseElements.ConsoleLogin``), for
    Sigma rules. These are free text a service or a caller writes: a value that may hold an
    identifier (:func:`may_identify`) or longer than :data:`MAX_DETAIL_TEXT` becomes
    ``hmac:`` and its fingerprint; a key that may, or that names a secret (``credentials``,
    ``secretAccessKey``, ``sessionToken``... :data:`SECRET_KEY`), is dropped with what it holds;
    lists are not followed; at most :data:`MAX_DETAIL_LEAVES` leaves, :data:`MAX_DETAIL_DEPTH`
    levels deep.
    """
    out: dict[str, str] = {}
    for root in DETAIL_ROOTS:
        value = rec.get(root)
        if isinstance(value, dict):
            if root != "errorMessage":
                _walk_detail(out, root, value, 0, fp)
        elif root == "errorMessage":
            _detail_leaf(out, root, value, fp)
    if not out:
        return None
    # as json.dumps(out, sort_keys=True, separators=(",", ":")) of these texts
    pairs = [f"{_json_text(k)}:{_json_text(v)}" for k, v in sorted(out.items())]
    return "{" + ",".join(pairs) + "}"


def _walk_detail(out: dict[str, str], path: str, value: dict[Any, Any], depth: int,
                 fp: _Fingerprints) -> None:
    """The screened scalar leaves under ``value`` (at ``path``, ``depth``) into ``out``.

    Depth first, until :data:`MAX_DETAIL_LEAVES`; objects :data:`MAX_DETAIL_DEPTH` deep are left.
    """
    for key, inner in value.items():
        if len(out) >= MAX_DETAIL_LEAVES:
            return
        if not _detail_key(key):
            continue
        if isinstance(inner, dict):
            if depth + 1 < MAX_DETAIL_DEPTH:
                _walk_detail(out, f"{path}.{key}", inner, depth + 1, fp)
        elif type(inner) is str:
            text = inner.strip()
            if text:  # fp.label: fingerprinted when it may hold an identifier
                out[f"{path}.{key}"] = (f"{MASKED_LABEL}{fp(text)}" if len(text) > MAX_DETAIL_TEXT
                                        else fp.text(text))
        elif type(inner) is int:  # not a bool; as _str
            text = str(inner)
            out[f"{path}.{key}"] = (f"{MASKED_LABEL}{fp(text)}" if len(text) > MAX_DETAIL_TEXT
                                    else fp.text(text))
        else:
            _detail_leaf(out, f"{path}.{key}", inner, fp)


def _detail_leaf(out: dict[str, str], path: str, value: object, fp: _Fingerprints) -> None:
    """One scalar leaf (not an object) of the detail at ``path``, screened (lists are left)."""
    if len(out) >= MAX_DETAIL_LEAVES:
        return
    if isinstance(value, bool):
        text: str | None = "true" if value else "false"
    else:
        text = _str(value)
    if text is None:
        return
    out[path] = f"{MASKED_LABEL}{fp(text)}" if len(text) > MAX_DETAIL_TEXT else fp.text(text)


#: Whether each detail key met is kept (keys repeat from record to record); bounded.
_DETAIL_KEYS: dict[str, bool] = {}
_DETAIL_KEYS_KEPT = 4096


def _detail_key(key: object) -> bool:
    """Whether the detail key ``key`` is kept: a short name, no dot, no identifier, no secret."""
    if not isinstance(key, str):
        return False
    known = _DETAIL_KEYS.get(key)
    if known is not None:
        return known
    kept = bool(key) and "." not in key and len(key) <= MAX_DETAIL_TEXT and not (
        SECRET_KEY.search(key) or may_identify(key))
    if len(key) <= MAX_DETAIL_TEXT:
        if len(_DETAIL_KEYS) >= _DETAIL_KEYS_KEPT:
            _DETAIL_KEYS.clear()
        _DETAIL_KEYS[key] = kept
    return kept


def _cloudtrail_unpack(value: dict[str, Any]) -> dict[str, Any] | list[dict[str, Any] | str]:
    """One CloudTrail record, or the ``Records`` of a container held whole (rare: far ahead)."""
    records = value.get("Records")
    if not isinstance(records, list):
        return value
    return [rec if isinstance(rec, dict) else "not a JSON object" for rec in records]


def _cloudtrail_records(path: Path, fp: _Fingerprints) -> Callable[[int, Any, _Collector],
                                                                   Iterator[_Row]]:
    return _json_record_rows(path, fp, _cloudtrail_row, _cloudtrail_unpack)
