"""The AWS permission collector against a planted IAM + S3 estate on a real moto server.

``fixtures/permestate.py`` plants groups, users, roles and buckets; :func:`collect_aws` must
report each planted membership and grant exactly, send only read calls, and turn what it cannot
read into Problems. The pure translation functions are tested directly as well.
"""

from __future__ import annotations

import json
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "fixtures"))

import permestate
import s3peers

from hipaa_audit.permissions.aws import (
    acl_grants,
    bucket_policy_grants,
    collect_aws,
    condition_texts,
    details_by_listing,
    identity_grants,
    parse_document,
    resource_ids,
    s3_actions,
    trust_memberships,
)
from hipaa_audit.permissions.model import ACTIONS, ANYONE, Facts, Grant, Membership
from hipaa_audit.s3.client import Access, Connection, is_read_only

pytestmark = pytest.mark.timeout(300)
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
    (["s3:GetBucketPolicy", "s3:GetBucketAcl"], {"read"}),
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
    # iam:* on an S3 resource does not reach IAM; other IAM actions do not count
    doc = {"Statement": [{"Effect": "Allow", "Action": ["iam:*"], "Resource": "arn:aws:s3:::a"},
                         {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"}]}
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


def test_unconditional_denies_are_subtracted() -> None:
    allow = {"Effect": "Allow", "Action": "s3:*",
             "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]}
    deny = {"Effect": "Deny", "Action": ["s3:DeleteObject*", "s3:DeleteBucket"],
            "Resource": "arn:aws:s3:::b/*"}
    [g] = identity_grants("aws:user/u", [("iam:inline/u/a", {"Statement": [allow]}),
                                         ("iam:inline/u/d", {"Statement": [deny]})], ["b"])
    assert g.actions == {"list", "read", "write", "admin"}
    # a conditional deny is shown-not-evaluated: nothing is subtracted
    conditional = {**deny, "Condition": {"Bool": {"aws:MultiFactorAuthPresent": False}}}
    [g] = identity_grants("aws:user/u", [("iam:inline/u/a", {"Statement": [allow,
                                                                           conditional]})], ["b"])
    assert g.actions == ALL
    # a deny on a prefix leaves the whole-bucket grant alone; a bucket deny covers a prefix
    prefix_deny = {**deny, "Resource": "arn:aws:s3:::b/secret/*"}
    [g] = identity_grants("aws:user/u", [("p", {"Statement": [allow, prefix_deny]})], ["b"])
    assert g.actions == ALL
    prefix_allow = {"Effect": "Allow", "Action": "s3:GetObject",
                    "Resource": "arn:aws:s3:::b/in/*"}
    everything = {"Effect": "Deny", "Action": "s3:*", "Resource": "*"}
    assert identity_grants("aws:user/u", [("p", {"Statement": [prefix_allow, everything]})],
                           ["b"]) == []


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
        (ANYONE, "s3://b", "s3:bucket-policy", ("StringEquals aws:SourceVpce=vpce-1",)):
            {"read"},
        (f"aws:account/{ACCOUNT}", "s3://b", "s3:bucket-policy", ()): {"list"},
        ("aws:account/111111111111", "s3://b", "s3:bucket-policy", ()): {"list"},
        ("aws:role/reader", "s3://b", "s3:bucket-policy", ()): {"list"},
        ("aws:account/222222222222", "s3://b", "s3:bucket-policy",
         ("principal arn:aws:iam::222222222222:user/outsider",)): {"list"},
        ("aws:service/logging.s3.amazonaws.com", "s3://b", "s3:bucket-policy", ()): {"list"},
    }
    assert got.unmapped == ["Federated: cognito-identity.amazonaws.com"]
    # an unconditional Deny to * subtracts from everyone in the policy
    deny = {"Effect": "Deny", "Principal": "*", "Action": "s3:ListBucket",
            "Resource": "arn:aws:s3:::b"}
    got = bucket_policy_grants("b", {"Statement": [*doc["Statement"], deny]}, ACCOUNT)
    assert {g.principal for g in got.grants} == {ANYONE}


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
        ANYONE: {"list", "read"},
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


def test_estate_is_built_once_per_server(
        estate: tuple[s3peers.S3Server, dict[str, str]]) -> None:
    """A second build on the same server fails loudly: the estate is planted once per server."""
    server, _ = estate
    with pytest.raises(Exception, match=r"EntityAlreadyExists|already"):
        permestate.build_aws_estate(server.client("iam"), server.client())
