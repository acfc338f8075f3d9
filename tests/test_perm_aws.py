"""The AWS permission collector against a planted IAM + S3 estate on a real moto server.

``fixtures/permestate.py`` plants groups, users, roles and buckets; :func:`collect_aws` must
report each planted membership and grant exactly, send only read calls, and turn what it cannot
read into Problems. The pure translation functions are tested directly as well.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import ROOT

sys.path.insert(0, str(ROOT / "fixtures"))

import permestate
import s3peers

from hipaa_audit.aws.client import Access, Connection, is_read_only
from hipaa_audit.aws.iam_details import details_by_listing
from hipaa_audit.aws.iam_policy import (
    IAM_ESCALATION,
    METADATA_READS,
    Scope,
    action_level,
    parse_document,
    resource_ids,
    resource_scopes,
    s3_actions,
)
from hipaa_audit.aws.policy import condition_texts
from hipaa_audit.permissions.aws import (
    _IamReader,
    acl_grants,
    bucket_policy_grants,
    collect_aws,
    iam_facts,
    identity_grants,
    policy_principals,
    trust_memberships,
)
from hipaa_audit.permissions.model import ACTIONS, ANYONE, Facts, Grant, Membership

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
ACCOUNT = s3peers.MOTO_ACCOUNT
ALL = frozenset(ACTIONS)
BUCKETS = ["imaging-archive", "public-share", "research-deid", "teaching-files"]


@pytest.fixture(scope="module")
def estate(tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[s3peers.S3Server, dict[str, str]]]:
    server, planted = permestate.start_aws_estate(tmp_path_factory.mktemp("permaws"))
    yield server, planted
    server.stop()


def access(server: s3peers.S3Server) -> Access:
    return Access(endpoint_url=server.endpoint_url, region="us-east-1", provider="aws")


def collect(server: s3peers.S3Server, env: dict[str, str] | None = None, **kw: Any) -> Facts:
    with pytest.MonkeyPatch.context() as mp:
        for k, v in (env or server.env()).items():
            mp.setenv(k, v)
        return collect_aws(access(server), **kw)


@pytest.fixture(scope="module")
def observed(estate: tuple[s3peers.S3Server, dict[str, str]]
             ) -> tuple[Facts, list[tuple[str, str]]]:
    calls: list[tuple[str, str]] = []
    facts = collect(estate[0], observer=lambda s, o: calls.append((s, o)))
    return facts, calls


@pytest.fixture(scope="module")
def facts(observed: tuple[Facts, list[tuple[str, str]]]) -> Facts:
    return observed[0]


def grants(facts: Facts, principal: str, resource: str | None = None) -> list[Grant]:
    return [g for g in facts.grants
            if g.principal == principal and (resource is None or g.resource == resource)]


# ---------------------------------------------------------------------------------------------
# The planted estate


def test_estate_is_planted(estate: tuple[s3peers.S3Server, dict[str, str]]) -> None:
    server, planted = estate
    assert {"radiologists", "alice", "bob", "carol", "admins", "dave", "svc-archiver", "erin",
            "frank", "archive-reader", "ec2-ingest", *BUCKETS} <= set(planted)
    names = {b["Name"] for b in server.client().list_buckets()["Buckets"]}
    assert set(BUCKETS) <= names


def test_principals_and_resources(facts: Facts) -> None:
    assert facts.sources == ["aws"]
    assert facts.problems == []
    assert facts.own_accounts == [ACCOUNT]
    p = facts.principals
    for user in ("alice", "bob", "carol", "dave", "erin", "frank"):
        assert p[f"aws:user/{user}"].kind == "user"
        assert p[f"aws:user/{user}"].human is True, user
    assert p["aws:user/svc-archiver"].human is False  # path /service/
    assert p["aws:group/radiologists"].kind == "group"
    assert p["aws:role/archive-reader"].kind == "role"
    assert p["aws:service/ec2.amazonaws.com"].kind == "service"
    assert p["aws:account/999999999999"].kind == "account"
    assert p[ANYONE].kind == "anyone"
    system = f"aws:{ACCOUNT}"
    for bucket in BUCKETS:
        r = facts.resources[f"s3://{bucket}"]
        assert (r.kind, r.phi, r.system) == ("bucket", None, system)
    prefix = facts.resources["s3://imaging-archive/incoming"]
    assert (prefix.kind, prefix.system) == ("prefix", system)


def test_memberships(facts: Facts) -> None:
    edges = set(facts.memberships)
    for user in ("alice", "bob", "carol"):
        assert Membership(f"aws:user/{user}", "aws:group/radiologists", "member-of",
                          "iam:group-membership") in edges
    assert Membership("aws:user/dave", "aws:group/admins", "member-of",
                      "iam:group-membership") in edges
    assert Membership("aws:account/999999999999", "aws:role/archive-reader", "can-assume",
                      "iam:trust-policy:archive-reader") in edges
    assert Membership("aws:service/ec2.amazonaws.com", "aws:role/ec2-ingest", "can-assume",
                      "iam:trust-policy:ec2-ingest") in edges
    assert not [e for e in edges if e.member in ("aws:user/erin", "aws:user/frank")]
    assert len(edges) == 6


def test_identity_policy_grants(facts: Facts) -> None:
    [g] = grants(facts, "aws:group/radiologists")
    assert (g.resource, g.actions, g.source) == (
        "s3://imaging-archive", {"list", "read"}, "iam:policy/imaging-read")
    [g] = grants(facts, "aws:user/erin")
    assert (g.resource, g.actions, g.source) == (
        "s3://imaging-archive", ALL, "iam:inline/erin/archive-full")
    [g] = grants(facts, "aws:user/svc-archiver")
    assert (g.resource, g.actions, g.source) == (
        "s3://imaging-archive/incoming", {"read", "write"}, "iam:inline/svc-archiver/ingest")
    admin = grants(facts, "aws:group/admins")
    assert {g.resource for g in admin} == {f"s3://{b}" for b in BUCKETS}
    assert all("admin" in g.actions and g.source == "iam:inline/admins/everything"
               for g in admin)
    [g] = grants(facts, "aws:role/archive-reader")
    assert (g.resource, g.actions, g.source) == (
        "s3://imaging-archive", {"list", "read"}, "iam:policy/archive-read")
    [g] = grants(facts, "aws:role/ec2-ingest")
    assert (g.resource, g.actions) == ("s3://imaging-archive/incoming", {"write"})
    # users in groups get nothing directly: access flows through the membership
    assert grants(facts, "aws:user/alice") == [] and grants(facts, "aws:user/dave") == []


def test_bucket_side_grants(facts: Facts) -> None:
    [g] = grants(facts, "aws:user/frank")
    assert (g.resource, g.actions, g.source) == ("s3://imaging-archive", {"read"},
                                                 "s3:bucket-policy")
    public = {(g.resource, g.source): g.actions for g in grants(facts, ANYONE)}
    assert public == {("s3://public-share", "s3:acl"): {"list"},
                      ("s3://research-deid", "s3:bucket-policy"): {"read"}}
    assert not [g for g in facts.grants if g.resource == "s3://teaching-files"
                and g.principal != "aws:group/admins"]
    # the owner's own FULL_CONTROL ACL entry is not a grant
    assert not [g for g in facts.grants if g.principal.startswith("aws:account/canonical:")]


def test_only_read_calls_are_sent(observed: tuple[Facts, list[tuple[str, str]]]) -> None:
    _, calls = observed
    ops = {op for _, op in calls}
    assert all(is_read_only(op) for op in ops), ops
    assert all(op.startswith(("List", "Get", "Head")) or op == "GetCallerIdentity"
               for op in ops)
    assert {"GetAccountAuthorizationDetails", "ListBuckets", "GetBucketPolicy", "GetBucketAcl",
            "GetPublicAccessBlock", "GetBucketOwnershipControls", "GetCallerIdentity"} <= ops
    assert ("s3control", "GetPublicAccessBlock") in calls  # account BPA on AWS semantics
    assert not [op for op in ops if "Object" in op]  # no object is listed or read


def test_public_access_block_and_ownership(
        estate: tuple[s3peers.S3Server, dict[str, str]]) -> None:
    server, _ = estate
    s3 = server.client()
    for bucket in ("ignored-acl", "enforced-acl", "restricted-policy"):
        s3.create_bucket(Bucket=bucket)
    for bucket in ("ignored-acl", "enforced-acl"):
        s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={
            "Rules": [{"ObjectOwnership": "ObjectWriter"}]})
        s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    s3.put_public_access_block(Bucket="ignored-acl", PublicAccessBlockConfiguration={
        "IgnorePublicAcls": True})
    s3.put_bucket_ownership_controls(Bucket="enforced-acl", OwnershipControls={
        "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})
    s3.put_bucket_policy(Bucket="restricted-policy", Policy=json.dumps({"Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": "arn:aws:s3:::restricted-policy/*"},
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
         "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::restricted-policy"}]}))
    s3.put_public_access_block(Bucket="restricted-policy", PublicAccessBlockConfiguration={
        "RestrictPublicBuckets": True})

    wanted = ["ignored-acl", "enforced-acl", "restricted-policy", "public-share",
              "no-such-bucket"]
    facts = collect(server, buckets=wanted)
    public = {g.resource for g in facts.grants if g.principal == ANYONE}
    assert public == {"s3://public-share"}  # the control keeps its public-read grant
    # RestrictPublicBuckets keeps the own account's grant
    [own] = [g for g in facts.grants if g.resource == "s3://restricted-policy"
             and g.source == "s3:bucket-policy"]
    assert (own.principal, own.actions) == (f"aws:account/{ACCOUNT}", {"list"})
    # the restriction: nothing outside the wanted buckets, a missing name is a Problem
    assert set(facts.resources) == {f"s3://{b}" for b in wanted[:4]}
    assert {g.resource for g in facts.grants} <= set(facts.resources)
    assert [p.asset for p in facts.problems] == ["s3://no-such-bucket"]
    assert "not found" in facts.problems[0].message


def test_iam_fallback_by_listing(estate: tuple[s3peers.S3Server, dict[str, str]]) -> None:
    server, _ = estate
    with pytest.MonkeyPatch.context() as mp:
        for k, v in server.env().items():
            mp.setenv(k, v)
        iam = Connection(access(server)).client("iam")  # read-only: a write would be refused
        details, problems = details_by_listing(iam)
    assert problems == []
    users = {u["UserName"]: u for u in details["UserDetailList"]}
    assert users["alice"]["GroupList"] == ["radiologists"]
    assert users["svc-archiver"]["Path"] == "/service/"
    assert [p["PolicyName"] for p in users["erin"]["UserPolicyList"]] == ["archive-full"]
    groups = {g["GroupName"]: g for g in details["GroupDetailList"]}
    assert [p["PolicyName"] for p in groups["radiologists"]["AttachedManagedPolicies"]] == [
        "imaging-read"]
    roles = {r["RoleName"]: r for r in details["RoleDetailList"]}
    trust = parse_document(roles["archive-reader"]["AssumeRolePolicyDocument"])
    assert trust["Statement"][0]["Principal"] == {"AWS": "arn:aws:iam::999999999999:root"}


def test_denied_iam_is_a_problem(estate: tuple[s3peers.S3Server, dict[str, str]]) -> None:
    """moto enforces IAM once auth is switched on: an auditor who may read S3 only."""
    server, _ = estate
    iam = server.client("iam")
    iam.create_user(UserName="auditor")
    iam.put_user_policy(UserName="auditor", PolicyName="s3-read", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*",
                       "Action": ["s3:List*", "s3:Get*", "sts:GetCallerIdentity"]}]}))
    key = iam.create_access_key(UserName="auditor")["AccessKey"]
    env = {**server.env(), "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
           "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}

    def auth(count: bytes) -> None:
        req = urllib.request.Request(f"{server.endpoint_url}/moto-api/reset-auth", data=count,
                                     method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200

    auth(b"0")
    try:
        facts = collect(server, env=env, buckets=["imaging-archive"])
    finally:
        auth(b"inf")
    iam_problems = [p for p in facts.problems if p.asset == "iam"]
    assert [(p.source, p.message) for p in iam_problems] == [
        ("aws", "cannot read IAM: access denied (iam:GetAccountAuthorizationDetails)")]
    # S3 was still read: frank's bucket-policy grant is there, IAM-derived grants are not
    assert [(g.principal, g.source) for g in facts.grants] == [
        ("aws:user/frank", "s3:bucket-policy")]
    assert facts.memberships == []


# ---------------------------------------------------------------------------------------------
# Pure translation


@pytest.mark.parametrize(("patterns", "expected"), [
    (["s3:GetObject"], {"read"}),
    (["s3:ListBucket"], {"list"}),
    (["s3:Get*"], {"read"}),
    (["S3:getobject"], {"read"}),  # case-insensitive
    (["s3:List*"], {"list"}),
    (["s3:*Object"], {"read", "write", "delete"}),
    (["s3:PutObject"], {"write"}),
    (["s3:PutObjectAcl"], {"admin"}),
    (["s3:PutObject*"], {"write", "admin"}),  # PutObjectAcl is admin, the rest write
    (["s3:RestoreObject", "s3:AbortMultipartUpload"], {"write"}),
    (["s3:DeleteObject*", "s3:DeleteBucket"], {"delete"}),
    (["s3:PutBucketPolicy"], {"admin"}),
    (["s3:PutBucketPublicAccessBlock", "s3:PutEncryptionConfiguration"], {"admin"}),
    # reading configuration or metadata reads no PHI: it grants nothing
    (["s3:GetBucketPolicy", "s3:GetBucketAcl"], set()),
    (["s3:GetObjectAcl", "s3:GetObjectTagging", "s3:GetObjectAttributes",
      "s3:GetEncryptionConfiguration", "s3:GetBucket*"], set()),
    (["s3:GetObjectVersion"], {"read"}),
    (["s3:PutAccountPublicAccessBlock"], {"admin"}),
    (["s3:PutBucketLogging", "s3:DeleteBucketOwnershipControls",
      "s3:PutBucketOwnershipControls"], {"admin"}),
    (["s3:*"], set(ACTIONS)),
    (["*"], set(ACTIONS)),
    (["ec2:*", "iam:PassRole", "s3:ListAllMyBuckets"], set()),
])
def test_action_mapping(patterns: list[str], expected: set[str]) -> None:
    assert s3_actions(patterns) == expected


def test_not_action() -> None:
    assert s3_actions(["s3:*"], not_action=True) == frozenset()
    assert s3_actions(["s3:Delete*", "s3:Put*"], not_action=True) >= {"list", "read"}
    assert "delete" not in s3_actions(["s3:Delete*", "s3:Put*"], not_action=True)
    # an Allow with NotAction grants the rest and says so in the conditions
    doc = {"Statement": [{"Effect": "Allow", "NotAction": "s3:Delete*",
                          "Resource": "arn:aws:s3:::b/*"}]}
    [g] = identity_grants("aws:user/u", [("iam:inline/u/p", doc)], ["b"])
    assert g.conditions == ("NotAction",)
    assert "delete" not in g.actions and {"list", "read", "write"} <= g.actions
    # NotAction iam:* on * grants every S3 action but no IAM admin
    doc = {"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}]}
    got = identity_grants("aws:user/u", [("iam:policy/power", doc)], ["a", "b"])
    assert {(g.resource, g.actions, g.conditions) for g in got} == {
        ("s3://a", ALL, ("NotAction",)), ("s3://b", ALL, ("NotAction",))}


def test_iam_star_is_admin_of_every_bucket() -> None:
    doc = {"Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}]}
    got = identity_grants("aws:role/r", [("iam:policy/iam-full", doc)], ["a", "b"])
    assert {(g.resource, g.actions) for g in got} == {("s3://a", frozenset({"admin"})),
                                                      ("s3://b", frozenset({"admin"}))}
    # iam:* on an S3 resource does not reach IAM; IAM actions that escalate nothing do not count
    doc = {"Statement": [{"Effect": "Allow", "Action": ["iam:*"], "Resource": "arn:aws:s3:::a"},
                         {"Effect": "Allow", "Action": ["iam:Get*", "iam:List*",
                                                        "iam:ChangePassword"], "Resource": "*"}]}
    assert identity_grants("aws:role/r", [("iam:policy/x", doc)], ["a", "b"]) == []


def test_resources() -> None:
    listed = ["imaging-archive", "imaging-teaching", "research"]
    assert resource_ids(["arn:aws:s3:::imaging-archive", "arn:aws:s3:::imaging-archive/*"],
                        listed) == ["s3://imaging-archive"]
    assert resource_ids(["arn:aws:s3:::imaging-archive/incoming/*"], listed) == [
        "s3://imaging-archive/incoming"]
    assert resource_ids(["arn:aws:s3:::imaging-*"], listed) == [
        "s3://imaging-archive", "s3://imaging-teaching"]
    assert resource_ids(["*"], listed) == [f"s3://{b}" for b in listed]
    assert resource_ids(["arn:aws:s3:::*"], listed) == [f"s3://{b}" for b in listed]
    assert resource_ids(["arn:aws:s3:::elsewhere/*"], listed) == ["s3://elsewhere"]
    assert resource_ids(["arn:aws:dynamodb:us-east-1:1:table/t"], listed) == []
    assert resource_ids(["arn:aws:s3:::imaging-*"], listed, not_resource=True) == [
        "s3://research"]


def test_a_wildcard_inside_a_key_segment_cuts_to_the_parent_prefix() -> None:
    assert resource_ids(["arn:aws:s3:::b/pub*"], ["b"]) == ["s3://b"]
    assert resource_ids(["arn:aws:s3:::b/in/x*.dcm"], ["b"]) == ["s3://b/in"]
    assert resource_ids(["arn:aws:s3:::b/in/*/raw/*"], ["b"]) == ["s3://b/in"]
    assert resource_ids(["arn:aws:s3:::b/in/sub/*"], ["b"]) == ["s3://b/in/sub"]
    assert resource_ids(["arn:aws:s3:::b/in/a?c"], ["b"]) == ["s3://b/in"]
    # a Deny on pub* covers the keys under pub/ only: it leaves the (wider) grant alone
    allow = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/pub*"}
    deny = {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/pub*"}
    assert _grants_of(allow, deny, buckets=("b",)) == {"s3://b": {"read"}}
    assert resource_scopes(["arn:aws:s3:::b/pub*"], ["b"], strict=True) == [
        Scope("s3://b/pub", frozenset({"object"}))]


def test_unconditional_denies_are_subtracted() -> None:
    allow = {"Effect": "Allow", "Action": "s3:*",
             "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]}
    deny = {"Effect": "Deny", "Action": ["s3:DeleteObject*", "s3:DeleteBucket"],
            "Resource": "arn:aws:s3:::b/*"}
    # b/* covers the objects only: DeleteObject* goes, DeleteBucket (a bucket action) stays
    got = identity_grants("aws:user/u", [("iam:inline/u/a", {"Statement": [allow]}),
                                         ("iam:inline/u/d", {"Statement": [deny]})], ["b"])
    assert [g.actions for g in got] == [ALL]
    both = {**deny, "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]}
    [g] = identity_grants("aws:user/u", [("iam:inline/u/a", {"Statement": [allow]}),
                                         ("iam:inline/u/d", {"Statement": [both]})], ["b"])
    assert g.actions == {"list", "read", "write", "admin"}
    # a conditional deny is shown-not-evaluated: nothing is subtracted
    conditional = {**both, "Condition": {"Bool": {"aws:MultiFactorAuthPresent": False}}}
    [g] = identity_grants("aws:user/u", [("iam:inline/u/a", {"Statement": [allow,
                                                                           conditional]})], ["b"])
    assert g.actions == ALL
    # a deny on a prefix leaves the whole-bucket grant alone; a bucket deny covers a prefix
    prefix_deny = {**both, "Resource": "arn:aws:s3:::b/secret/*"}
    [g] = identity_grants("aws:user/u", [("p", {"Statement": [allow, prefix_deny]})], ["b"])
    assert g.actions == ALL
    prefix_allow = {"Effect": "Allow", "Action": "s3:GetObject",
                    "Resource": "arn:aws:s3:::b/in/*"}
    everything = {"Effect": "Deny", "Action": "s3:*", "Resource": "*"}
    assert identity_grants("aws:user/u", [("p", {"Statement": [prefix_allow, everything]})],
                           ["b"]) == []
    objects = {"Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}
    assert identity_grants("aws:user/u", [("p", {"Statement": [prefix_allow, objects]})],
                           ["b"]) == []


def _grants_of(*statements: dict[str, Any], buckets: tuple[str, ...] = ("phi",),
               own: str | None = None) -> dict[str, frozenset[str]]:
    got = identity_grants("aws:user/u", [("p", {"Statement": list(statements)})], list(buckets),
                          own_account=own)
    return {g.resource: g.actions for g in got}


def test_action_levels() -> None:
    assert {a: action_level(f"s3:{a}".lower()) for a in (
        "ListBucket", "ListBucketVersions", "GetBucketPolicy", "PutBucketPolicy",
        "DeleteBucket", "PutEncryptionConfiguration", "GetLifecycleConfiguration",
        "PutBucketPublicAccessBlock", "GetBucketObjectLockConfiguration")} == dict.fromkeys((
            "ListBucket", "ListBucketVersions", "GetBucketPolicy", "PutBucketPolicy",
            "DeleteBucket", "PutEncryptionConfiguration", "GetLifecycleConfiguration",
            "PutBucketPublicAccessBlock", "GetBucketObjectLockConfiguration"), "bucket")
    assert {a: action_level(f"s3:{a}".lower()) for a in (
        "GetObject", "PutObject", "DeleteObjectVersion", "PutObjectAcl", "RestoreObject",
        "AbortMultipartUpload", "ListMultipartUploadParts")} == dict.fromkeys((
            "GetObject", "PutObject", "DeleteObjectVersion", "PutObjectAcl", "RestoreObject",
            "AbortMultipartUpload", "ListMultipartUploadParts"), "object")
    assert action_level("s3:putaccountpublicaccessblock") == "account"
    assert action_level("iam:*") == action_level("iam:passrole") == "iam"


def test_a_deny_subtracts_only_at_the_level_its_arn_covers() -> None:
    """A Deny on the bucket ARN leaves object access; a Deny on B/* leaves bucket actions."""
    read = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::phi/*"}
    deny_bucket = {"Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::phi"}
    assert _grants_of(read, deny_bucket) == {"s3://phi": {"read"}}
    full = {"Effect": "Allow", "Action": "s3:*",
            "Resource": ["arn:aws:s3:::phi", "arn:aws:s3:::phi/*"]}
    deny_objects = {"Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::phi/*"}
    # ListBucket, DeleteBucket, PutBucketPolicy... stay (GetBucket* reads no PHI: no "read")
    assert _grants_of(full, deny_objects) == {"s3://phi": {"list", "delete", "admin"}}
    assert _grants_of(full, deny_bucket) == {"s3://phi": {"list", "read", "write", "delete",
                                                          "admin"}}  # the object-level ones
    list_deny = {"Effect": "Deny", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::phi"}
    reader = {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
              "Resource": ["arn:aws:s3:::phi", "arn:aws:s3:::phi/*"]}
    assert _grants_of(reader, list_deny) == {"s3://phi": {"read"}}
    # a Deny on a prefix covers the prefixes below it, not a sibling or the bucket
    deep = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::phi/in/sub/*"}
    in_deny = {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::phi/in/*"}
    assert _grants_of(deep, in_deny) == {}
    assert _grants_of(deep, {**in_deny, "Resource": "arn:aws:s3:::phi/inbox/*"}) == {
        "s3://phi/in/sub": {"read"}}
    # a Deny on one object key reaches a grant on that key only
    key = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::phi/a.dcm"}
    key_deny = {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::phi/a.dcm"}
    assert _grants_of(key, key_deny) == {}
    assert _grants_of(read, key_deny) == {"s3://phi": {"read"}}
    # the same in a bucket policy
    doc = {"Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/u"},
         "Action": "s3:GetObject", "Resource": "arn:aws:s3:::phi/*"},
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::phi"}]}
    [g] = bucket_policy_grants("phi", doc, ACCOUNT).grants
    assert (g.principal, g.actions) == ("aws:user/u", {"read"})


def test_an_allow_grants_only_the_actions_of_its_arn_level() -> None:
    on_bucket = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::phi"}
    assert _grants_of(on_bucket) == {}
    everything = {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::phi"}
    # GetBucket* reads configuration, not PHI: no "read" on the bucket level
    assert _grants_of(everything) == {"s3://phi": {"list", "delete", "admin"}}
    listing = {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::phi/*"}
    assert _grants_of(listing) == {}
    # a wildcard in the bucket part also matches "/": the objects are reached as well
    assert _grants_of({**on_bucket, "Resource": "arn:aws:s3:::ph*"}) == {"s3://phi": {"read"}}
    # the account-level action needs Resource "*"
    account = {"Effect": "Allow", "Action": "s3:PutAccountPublicAccessBlock",
               "Resource": "arn:aws:s3:::phi"}
    assert _grants_of(account) == {}
    assert _grants_of({**account, "Resource": "*"}, buckets=("phi", "b")) == {
        "s3://phi": {"admin"}, "s3://b": {"admin"}}


def test_not_resource_excludes_per_level() -> None:
    allow = {"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::phi"}
    got = _grants_of(allow, buckets=("phi", "other"))
    assert got["s3://other"] == ALL
    assert {"read", "write", "delete"} <= got["s3://phi"]  # every object of phi stays granted
    listing = {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject"],
               "NotResource": "arn:aws:s3:::phi/*"}
    assert _grants_of(listing, buckets=("phi", "other")) == {
        "s3://phi": {"list"}, "s3://other": {"list", "read"}}
    both = {**listing, "NotResource": ["arn:aws:s3:::phi", "arn:aws:s3:::phi/*"]}
    assert _grants_of(both, buckets=("phi", "other")) == {"s3://other": {"list", "read"}}
    # excluding one prefix still leaves the rest of the bucket's objects
    prefix = {**listing, "NotResource": "arn:aws:s3:::phi/secret/*"}
    assert _grants_of(prefix, buckets=("phi",)) == {"s3://phi": {"list", "read"}}
    assert resource_scopes(["arn:aws:s3:::phi"], ["phi"], not_resource=True) == [
        Scope("s3://phi", frozenset({"object", "account"}))]


def test_an_iam_deny_must_cover_the_whole_account() -> None:
    admin = {"Effect": "Allow", "Action": "iam:*", "Resource": "*"}
    one_user = {"Effect": "Deny", "Action": "iam:*",
                "Resource": f"arn:aws:iam::{ACCOUNT}:user/bob"}
    assert _grants_of(admin, one_user) == {"s3://phi": {"admin"}}
    for wide in ("*", "arn:aws:iam::*:*", f"arn:aws:iam::{ACCOUNT}:*"):
        assert _grants_of(admin, {**one_user, "Resource": wide}, own=ACCOUNT) == {}, wide
    other = {**one_user, "Resource": "arn:aws:iam::999999999999:*"}
    assert _grants_of(admin, other, own=ACCOUNT) == {"s3://phi": {"admin"}}
    # denying one escalation path leaves the others
    attach = {"Effect": "Deny", "Action": "iam:AttachUserPolicy", "Resource": "*"}
    assert _grants_of(admin, attach) == {"s3://phi": {"admin"}}
    only_attach = {"Effect": "Allow", "Action": "iam:AttachUserPolicy", "Resource": "*"}
    assert _grants_of(only_attach, attach) == {}


@pytest.mark.parametrize("action", IAM_ESCALATION)
def test_privilege_escalation_counts_as_iam_admin(action: str) -> None:
    allow = {"Effect": "Allow", "Action": action, "Resource": "*"}
    assert _grants_of(allow, buckets=("a", "b")) == {"s3://a": {"admin"}, "s3://b": {"admin"}}
    on_iam = {**allow, "Resource": f"arn:aws:iam::{ACCOUNT}:role/*"}
    assert _grants_of(on_iam) == {"s3://phi": {"admin"}}
    assert _grants_of({**allow, "Resource": "arn:aws:s3:::phi/*"}) == {}


def test_own_access_key_rotation_is_not_escalation() -> None:
    rotate = {"Effect": "Allow", "Action": ["iam:CreateAccessKey", "iam:DeleteAccessKey"],
              "Resource": "arn:aws:iam::*:user/${aws:username}"}
    assert _grants_of(rotate) == {}
    attach_self = {**rotate, "Action": "iam:AttachUserPolicy"}
    assert _grants_of(attach_self) == {"s3://phi": {"admin"}}


def test_conditions_as_text() -> None:
    cond = {"StringEquals": {"aws:SourceVpce": "vpce-1"},
            "Bool": {"aws:SecureTransport": False},
            "IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]}}
    assert condition_texts(cond) == ("Bool aws:SecureTransport=false",
                                     "IpAddress aws:SourceIp=10.0.0.0/8,192.168.0.0/16",
                                     "StringEquals aws:SourceVpce=vpce-1")
    doc = {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                          "Resource": "arn:aws:s3:::b/*", "Condition": cond}]}
    [g] = identity_grants("aws:role/r", [("iam:policy/p", doc)], ["b"])
    assert g.conditions == condition_texts(cond)


def test_bucket_policy_principals() -> None:
    doc: dict[str, Any] = {"Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": "arn:aws:s3:::b/*",
         "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1"}}},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b",
         "Principal": {"AWS": [f"arn:aws:iam::{ACCOUNT}:root", "111111111111",
                               f"arn:aws:iam::{ACCOUNT}:role/reader",
                               "arn:aws:iam::222222222222:user/outsider"],
                       "Service": "logging.s3.amazonaws.com",
                       "Federated": "cognito-identity.amazonaws.com"}},
        # a grant on another bucket's resource does not count here
        {"Effect": "Allow", "Principal": "*", "Action": "s3:*",
         "Resource": "arn:aws:s3:::other/*"},
    ]}
    got = bucket_policy_grants("b", doc, ACCOUNT)
    seen = {(g.principal, g.resource, g.source, g.conditions): g.actions for g in got.grants}
    assert seen == {
        # * confined to a VPC endpoint is not anyone (scan s3 does not call it public either)
        ("aws:confined/StringEquals aws:SourceVpce=vpce-1", "s3://b", "s3:bucket-policy",
         ("StringEquals aws:SourceVpce=vpce-1",)): {"read"},
        (f"aws:account/{ACCOUNT}", "s3://b", "s3:bucket-policy", ()): {"list"},
        ("aws:account/111111111111", "s3://b", "s3:bucket-policy", ()): {"list"},
        ("aws:role/reader", "s3://b", "s3:bucket-policy", ()): {"list"},
        # a foreign user is its account, the ARN is evidence in the source, not a condition
        ("aws:account/222222222222", "s3://b",
         "s3:bucket-policy (arn:aws:iam::222222222222:user/outsider)", ()): {"list"},
        ("aws:service/logging.s3.amazonaws.com", "s3://b", "s3:bucket-policy", ()): {"list"},
    }
    assert got.unmapped == ["Federated: cognito-identity.amazonaws.com (an identity provider: "
                            "who signs in through it cannot be listed)"]
    # an unconditional Deny to * subtracts from everyone in the policy
    deny = {"Effect": "Deny", "Principal": "*", "Action": "s3:ListBucket",
            "Resource": "arn:aws:s3:::b"}
    got = bucket_policy_grants("b", {"Statement": [*doc["Statement"], deny]}, ACCOUNT)
    assert {g.principal for g in got.grants} == {"aws:confined/StringEquals aws:SourceVpce=vpce-1"}


def test_a_deny_of_one_foreign_user_leaves_its_account() -> None:
    doc = {"Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::222222222222:root"},
         "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b"},
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::222222222222:user/intern"},
         "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"},
        {"Effect": "Deny", "Principal": {"AWS": "arn:aws:iam::222222222222:user/intern"},
         "Action": "s3:*", "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]}]}
    got = bucket_policy_grants("b", doc, ACCOUNT).grants
    assert [(g.principal, g.actions, g.source) for g in got] == [
        ("aws:account/222222222222", {"list"}, "s3:bucket-policy")]


def test_foreign_principals_when_the_own_account_is_unknown() -> None:
    st = {"Principal": {"AWS": ["arn:aws:iam::999988887777:user/vendor",
                                "arn:aws:iam::999988887777:role/ops",
                                "arn:aws:sts::999988887777:assumed-role/ops/session"]}}
    who, unmapped = policy_principals(st, None)
    assert unmapped == []
    assert [(w.principal.id, w.extra, w.via) for w in who] == [
        ("aws:account/999988887777", (), "arn:aws:iam::999988887777:user/vendor"),
        ("aws:account/999988887777", (), "arn:aws:iam::999988887777:role/ops"),
        ("aws:account/999988887777", (), "arn:aws:sts::999988887777:assumed-role/ops/session")]
    # a user or role IAM itself listed is ours even without the account id
    who, _ = policy_principals(st, None, known={"aws:user/vendor", "aws:role/ops"})
    assert [w.principal.id for w in who] == ["aws:user/vendor", "aws:role/ops"]
    # a known own account: its users are users, every other account's are the account
    who, _ = policy_principals(st, "999988887777")
    assert [w.principal.id for w in who] == ["aws:user/vendor", "aws:role/ops"]
    who, _ = policy_principals(st, ACCOUNT, known={"aws:user/vendor"})
    assert {w.principal.id for w in who} == {"aws:account/999988887777"}


def test_the_own_account_comes_from_the_iam_answer() -> None:
    trust = {"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {
        "AWS": [f"arn:aws:iam::{ACCOUNT}:user/alice", "arn:aws:iam::999988887777:user/vendor"]}}]}
    details = {"UserDetailList": [{"UserName": "alice",
                                   "Arn": f"arn:aws:iam::{ACCOUNT}:user/alice"}],
               "RoleDetailList": [{"RoleName": "ops", "Arn": f"arn:aws:iam::{ACCOUNT}:role/ops",
                                   "AssumeRolePolicyDocument": trust}],
               "Policies": [{"Arn": "arn:aws:iam::aws:policy/ReadOnlyAccess",
                             "PolicyName": "ReadOnlyAccess", "PolicyVersionList": []}]}
    facts = iam_facts(details, ["b"])
    assert facts.own_accounts == [ACCOUNT] and facts.problems == []
    assert {(m.member, m.source, m.conditions) for m in facts.memberships} == {
        ("aws:user/alice", "iam:trust-policy:ops", ()),
        ("aws:account/999988887777",
         "iam:trust-policy:ops (arn:aws:iam::999988887777:user/vendor)", ())}
    # no account anywhere: only the users IAM listed are ours
    bare = {"UserDetailList": [{"UserName": "alice"}],
            "RoleDetailList": [{"RoleName": "ops", "AssumeRolePolicyDocument": trust}]}
    facts = iam_facts(bare, ["b"])
    assert facts.own_accounts == []
    assert {m.member for m in facts.memberships} == {"aws:user/alice",
                                                     "aws:account/999988887777"}
    # merge unions the own accounts
    merged = Facts(own_accounts=[ACCOUNT])
    merged.merge(Facts(own_accounts=[ACCOUNT, "999988887777", ACCOUNT]))
    assert merged.own_accounts == [ACCOUNT, "999988887777"]


def test_a_misshapen_iam_answer_is_one_problem() -> None:
    good = {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject",
                           "Resource": "arn:aws:s3:::b/*"}]}
    details: dict[str, Any] = {
        "UserDetailList": [
            "not-a-user",
            {"Path": "/"},
            {"UserName": "ok", "Arn": f"arn:aws:iam::{ACCOUNT}:user/ok",
             "GroupList": ["g", 7, None], "Tags": "tag-text",
             "AttachedManagedPolicies": [{"PolicyName": "no-arn"}, 3],
             "UserPolicyList": [{"PolicyName": "no-doc"}, {"PolicyDocument": good},
                                {"PolicyName": "good", "PolicyDocument": good}]}],
        "GroupDetailList": {"oops": 1},
        "RoleDetailList": [{"RoleName": 5}],
        "Policies": [{"PolicyVersionList": []}, None,
                     {"Arn": "arn:aws:iam::aws:policy/x", "PolicyVersionList": "v1"}],
    }
    facts = iam_facts(details, ["b"])
    assert set(facts.principals) == {"aws:user/ok"}
    assert [m.target for m in facts.memberships] == ["aws:group/g"]
    assert [(g.principal, g.resource, g.actions, g.source) for g in facts.grants] == [
        ("aws:user/ok", "s3://b", {"read"}, "iam:inline/ok/good")]
    [problem] = facts.problems
    assert (problem.source, problem.asset) == ("aws", "iam")
    assert problem.message == (
        "an IAM answer had an unexpected shape (14 entries skipped: AttachedManagedPolicies 2, "
        "GroupDetailList 1, GroupList 2, Policies 2, PolicyVersionList 1, RoleDetailList 1, "
        "Tags 1, UserDetailList 2, UserPolicyList 2)")
    for value in ("not-a-user", "no-arn", "no-doc", "oops", "tag-text", "v1"):
        assert value not in problem.message
    # not even a dict
    assert [p.message for p in iam_facts(["x"], ["b"]).problems] == [
        "an IAM answer had an unexpected shape (1 entry skipped: "
        "GetAccountAuthorizationDetails 1)"]


class _FallbackIam:
    """An IAM store without GetAccountAuthorizationDetails (and without paginators)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.when = dt.datetime(2026, 3, 1, 8, 30, tzinfo=dt.UTC)

    def can_paginate(self, operation: str) -> bool:
        return False

    def __getattr__(self, operation: str) -> Any:
        answers: dict[str, dict[str, Any]] = {
            "list_users": {"Users": [{"UserName": "u", "Path": "/", "PasswordLastUsed": self.when,
                                      "Arn": f"arn:aws:iam::{ACCOUNT}:user/u"}, {"Path": "/"}]},
            "list_groups_for_user": {"Groups": [{"GroupName": "g"}]},
            "list_user_tags": {"Tags": []}, "list_attached_user_policies": {"AttachedPolicies": []},
            "list_user_policies": {"PolicyNames": []}, "list_groups": {"Groups": []},
            "list_roles": {"Roles": []}}

        def answer(**_: Any) -> dict[str, Any]:
            self.calls.append(operation)
            if operation == "get_account_authorization_details":
                raise ClientError({"Error": {"Code": "NotImplemented"},
                                   "ResponseMetadata": {"HTTPStatusCode": 501}}, "Get")
            return dict(answers[operation])
        if operation.startswith("_"):
            raise AttributeError(operation)
        return answer


def test_the_fallback_lists_users_once() -> None:
    iam = _FallbackIam()
    facts = Facts()
    reader = _IamReader(iam, facts, None, ["b"])
    reader.read()
    assert iam.calls.count("list_users") == 1
    assert facts.principals["aws:user/u"].last_used == "2026-03-01"
    assert reader.own == ACCOUNT
    assert [m.target for m in facts.memberships] == ["aws:group/g"]
    # the user without a name is passed on by the listing and reported by the reader
    assert [p.message for p in facts.problems] == [
        "an IAM answer had an unexpected shape (1 entry skipped: UserDetailList 1)"]


def test_acl_grants() -> None:
    owner = "o" * 64
    acl = {"Owner": {"ID": owner}, "Grants": [
        {"Grantee": {"Type": "CanonicalUser", "ID": owner}, "Permission": "FULL_CONTROL"},
        {"Grantee": {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/s3/LogDelivery"},
         "Permission": "WRITE"},
        {"Grantee": {"Type": "Group",
                     "URI": "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"},
         "Permission": "WRITE"},
        {"Grantee": {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"},
         "Permission": "READ"},
        {"Grantee": {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"},
         "Permission": "READ_ACP"},
        {"Grantee": {"Type": "CanonicalUser", "ID": "x" * 64}, "Permission": "FULL_CONTROL"},
        {"Grantee": {"Type": "CanonicalUser", "ID": "y" * 64}, "Permission": "WRITE_ACP"},
    ]}
    got, principals = acl_grants("b", acl)
    assert {g.principal: g.actions for g in got} == {
        "aws:account/*": {"write", "delete"},
        ANYONE: {"list"},  # READ_ACP reads the ACL, not the objects
        f"aws:account/canonical:{'x' * 64}": ALL,
        f"aws:account/canonical:{'y' * 64}": {"admin"},
    }
    assert all(g.source == "s3:acl" and g.resource == "s3://b" for g in got)
    assert {p.id for p in principals} == {g.principal for g in got}


def test_trust_policy_own_account_and_encoded_documents() -> None:
    trust = {"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                            "Principal": {"AWS": ACCOUNT},
                            "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}}]}
    encoded = urllib.parse.quote(json.dumps(trust))
    assert parse_document(encoded) == trust
    edges, principals, unmapped = trust_memberships("ops", parse_document(encoded), ACCOUNT)
    assert edges == [Membership(f"aws:account/{ACCOUNT}", "aws:role/ops", "can-assume",
                                "iam:trust-policy:ops", ("Bool aws:MultiFactorAuthPresent=true",))]
    assert principals[0].kind == "account" and unmapped == []
    root = {"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                           "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}]}
    edges, _, _ = trust_memberships("ops", root, ACCOUNT)
    assert [e.member for e in edges] == [f"aws:account/{ACCOUNT}"]
    # a foreign role: its account, the ARN in the source, no condition
    foreign = {"Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                              "Principal": {"AWS": "arn:aws:iam::222222222222:role/ci"}}]}
    edges, _, _ = trust_memberships("ops", foreign, ACCOUNT)
    assert edges == [Membership("aws:account/222222222222", "aws:role/ops", "can-assume",
                                "iam:trust-policy:ops (arn:aws:iam::222222222222:role/ci)")]


def test_estate_is_built_once_per_server(
        estate: tuple[s3peers.S3Server, dict[str, str]]) -> None:
    """A second build on the same server fails loudly: the estate is planted once per server."""
    server, _ = estate
    with pytest.raises(Exception, match=r"EntityAlreadyExists|already"):
        permestate.build_aws_estate(server.client("iam"), server.client())


def test_reading_bucket_configuration_is_not_reading_phi() -> None:
    """A compliance auditor's role reads bucket policies, ACLs and encryption settings (the
    read-only configuration access of AWS's examples), never an object: no PHI read."""
    from hipaa_audit.catalog import load_catalog
    from hipaa_audit.permissions.baseline import parse_baseline
    from hipaa_audit.permissions.run import PermOptions, analyse

    auditor = {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadBucketConfiguration", "Effect": "Allow",
         "Action": ["s3:GetBucketPolicy", "s3:GetBucketPolicyStatus", "s3:GetBucketAcl",
                    "s3:GetEncryptionConfiguration", "s3:GetBucketVersioning",
                    "s3:GetBucketLogging", "s3:GetBucketPublicAccessBlock",
                    "s3:GetLifecycleConfiguration", "s3:ListAllMyBuckets"],
         "Resource": "arn:aws:s3:::*"},
        {"Sid": "ReadObjectMetadata", "Effect": "Allow",
         "Action": ["s3:GetObjectAcl", "s3:GetObjectTagging", "s3:GetObjectAttributes",
                    "s3:GetObjectRetention", "s3:GetObjectLegalHold"],
         "Resource": "arn:aws:s3:::phi/*"}]}
    reader = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjectVersion"],
        "Resource": "arn:aws:s3:::phi/*"}]}
    details = {"RoleDetailList": [
        {"RoleName": "config-auditor", "Arn": f"arn:aws:iam::{ACCOUNT}:role/config-auditor",
         "RolePolicyList": [{"PolicyName": "audit", "PolicyDocument": auditor}]},
        {"RoleName": "reader", "Arn": f"arn:aws:iam::{ACCOUNT}:role/reader",
         "RolePolicyList": [{"PolicyName": "read", "PolicyDocument": reader}]}]}
    assert s3_actions(sorted(METADATA_READS)) == frozenset()
    assert "s3:getbucketpolicy" in METADATA_READS and "s3:getobjectacl" in METADATA_READS
    facts = iam_facts(details, ["phi"])
    assert facts.problems == []
    assert {(g.principal, g.actions) for g in facts.grants} == {
        ("aws:role/reader", frozenset({"read"}))}
    baseline = parse_baseline({"roles": {}, "principals": {},
                               "phi": {"resources": ["s3://phi"]}})
    _g, _ctx, results = analyse(facts, PermOptions(baseline, ("aws",)), load_catalog())
    found = [(f.check_id, f.severity.value, f.message) for r in results for f in r.findings]
    assert not [f for f in found if "config-auditor" in f[2]], found
    assert [f[:2] for f in found if "aws:role/reader" in f[2]] == [
        ("perm-grant-outside-baseline", "high")]
