"""Pure tests of the S3 policy reader and the bucket rules: the traps other scanners fell into."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from helpers import ABSENT, observation, ok

from hipaa_audit.aws import policy as pol
from hipaa_audit.aws.client import Answer, classify, is_aws_endpoint, is_read_only
from hipaa_audit.catalog import load_catalog
from hipaa_audit.model import Status
from hipaa_audit.redaction import Masker
from hipaa_audit.s3.collect import BucketObservation
from hipaa_audit.s3.rules import BucketContext, S3Rules, Scope, effective_bpa, judge_bucket

pytestmark = pytest.mark.unit

B = "arn:aws:s3:::b"


def deny(condition: dict, *, action: object = "s3:*", resource: object = (B, f"{B}/*"),
         principal: object = "*") -> dict:
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": principal, "Action": action,
        "Resource": list(resource) if isinstance(resource, tuple) else resource,
        "Condition": condition}]}


@pytest.mark.parametrize("condition", [
    {"Bool": {"aws:SecureTransport": "false"}},
    {"Bool": {"aws:SecureTransport": False}},
    {"BoolIfExists": {"aws:SecureTransport": "false"}},
    {"BoolIfExists": {"aws:securetransport": ["false"]}},
])
def test_tls_only_accepts_every_spelling(condition: dict) -> None:
    assert pol.tls_only(deny(condition), "b").enforced


def test_tls_only_star_resource_and_principal_object() -> None:
    doc = deny({"Bool": {"aws:SecureTransport": "false"}}, action="*", resource="*",
               principal={"AWS": "*"})
    assert pol.tls_only(doc, "b").enforced


@pytest.mark.parametrize(("doc", "why"), [
    (deny({"Bool": {"aws:SecureTransport": "false"}}, action="s3:PutObject"), "denies only"),
    (deny({"Bool": {"aws:SecureTransport": "false"}}, resource=(f"{B}/*",)), "does not cover"),
    (deny({"Bool": {"aws:SecureTransport": "true"}}), "no statement"),
    (deny({"NumericLessThan": {"s3:TlsVersion": "1.2"}}), "plaintext request has no TLS"),
    ({"Statement": []}, "no statement"),
])
def test_tls_only_rejects(doc: dict, why: str) -> None:
    verdict = pol.tls_only(doc, "b")
    assert not verdict.enforced and why in verdict.detail


def test_tls_version_reported_beside_secure_transport() -> None:
    doc = deny({"Bool": {"aws:SecureTransport": "false"}})
    doc["Statement"].append({"Effect": "Deny", "Principal": "*", "Action": "s3:*",
                             "Resource": [B, f"{B}/*"],
                             "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}}})
    assert pol.tls_only(doc, "b") == pol.TlsVerdict(True, pol.tls_only(doc, "b").detail, "1.2")


def allow(principal: object, condition: dict | None = None) -> dict:
    st: dict = {"Effect": "Allow", "Principal": principal, "Action": "s3:GetObject",
                "Resource": f"{B}/*"}
    if condition:
        st["Condition"] = condition
    return {"Statement": st}


def test_public_policy_traps() -> None:
    assert pol.public_statements(allow("*")) == ["statement 1: s3:GetObject"]
    assert pol.public_statements(allow({"AWS": ["*"]}))
    assert not pol.public_statements(allow("*", {"StringEquals": {"aws:SourceVpce": "vpce-1"}}))
    assert not pol.public_statements(allow("*", {"StringEquals": {"aws:PrincipalOrgID": "o-1"}}))
    # a condition that confines nothing, or one that is not about the caller
    assert pol.public_statements(allow("*", {"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}))
    assert pol.public_statements(allow("*", {"Bool": {"aws:SecureTransport": "true"}}))
    assert not pol.public_statements(allow({"AWS": "arn:aws:iam::111111111111:root"}))


def test_principal_accounts() -> None:
    doc = allow({"AWS": ["arn:aws:iam::999999999999:root", "111111111111",
                         "arn:aws:sts::222222222222:assumed-role/r/s", "*"]})
    assert sorted(pol.principal_accounts(doc)) == ["111111111111", "222222222222", "999999999999"]


def test_public_grants_ignore_log_delivery() -> None:
    grants = [{"Grantee": {"Type": "Group", "URI": pol.ALL_USERS}, "Permission": "READ"},
              {"Grantee": {"Type": "Group",
                           "URI": "http://acs.amazonaws.com/groups/s3/LogDelivery"},
               "Permission": "WRITE"},
              {"Grantee": {"Type": "Group", "URI": pol.AUTHENTICATED_USERS},
               "Permission": "FULL_CONTROL"}]
    assert pol.public_grants(grants) == ["READ to everyone (AllUsers)",
                                         "FULL_CONTROL to any AWS account (AuthenticatedUsers)"]


def test_classify_and_read_only() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError

    def err(code: str, http: int) -> Answer:
        return classify(ClientError({"Error": {"Code": code},
                                     "ResponseMetadata": {"HTTPStatusCode": http}}, "Op"))

    assert err("NotImplemented", 501).state == "unsupported"
    assert err("MethodNotAllowed", 405).state == "unsupported"
    assert err("AccessDenied", 403).state == "denied"
    assert err("NoSuchBucketPolicy", 404).state == "absent"
    assert err("ServerSideEncryptionConfigurationNotFoundError", 404).state == "absent"
    assert err("NoSuchBucket", 404).state == "failed"
    assert "throttling" in err("SlowDown", 503).reason("x")
    assert classify(EndpointConnectionError(endpoint_url="http://x")).state == "failed"
    assert [is_read_only(o) for o in ("ListBuckets", "GetObject", "HeadObject", "AssumeRole",
                                      "PutObject", "DeleteObject", "CreateBucket",
                                      "PutPublicAccessBlock", "RestoreObject")] == \
        [True, True, True, True, False, False, False, False, False]
    assert is_aws_endpoint(None) and is_aws_endpoint("https://s3.eu-west-1.amazonaws.com")
    assert not is_aws_endpoint("http://127.0.0.1:9000")


@pytest.fixture(scope="module")
def rules() -> S3Rules:
    return S3Rules.build(load_catalog(), Masker(b"k" * 32))


def verdicts(obs: BucketObservation, rules: S3Rules, ctx: BucketContext | None = None,
             scope: Scope | None = None) -> dict[str, str]:
    result = judge_bucket(obs, ctx or BucketContext(aws=True), scope or Scope(), rules,
                          today=dt.date(2026, 12, 1))
    out = {}
    for check_id, (evaluated, failed, errors) in result.coverage.counts.items():
        assert evaluated == 1
        out[check_id] = "fail" if failed else ("error" if errors else "pass")
    for f in result.findings:
        if f.status is Status.ERROR:
            assert f.check_id == "s3-unverifiable"
    return out


FLAGS = dict.fromkeys(pol.BPA_FLAGS, True)


def test_account_bpa_covers_the_bucket(rules: S3Rules) -> None:
    obs = observation(bpa=ABSENT)
    obs.account_bpa = ok(PublicAccessBlockConfiguration=FLAGS)
    assert verdicts(obs, rules)["s3-public-access-block"] == "pass"
    obs.account_bpa = Answer("denied", code="AccessDenied", http=403)
    assert verdicts(obs, rules)["s3-public-access-block"] == "error"
    obs.answers["bpa"] = ok(PublicAccessBlockConfiguration=FLAGS)
    assert verdicts(obs, rules)["s3-public-access-block"] == "pass"


def test_unsupported_is_never_a_pass(rules: S3Rules) -> None:
    no = Answer("unsupported", code="NotImplemented", http=501)
    obs = observation(bpa=no, encryption=no, policy=no, versioning=no, ownership=no, acl=no,
                      logging=no)
    got = verdicts(obs, rules, BucketContext(aws=False))
    for check in ("s3-public-access-block", "s3-default-encryption", "s3-tls-only",
                  "s3-versioning", "s3-object-ownership", "s3-public-acl", "s3-access-logging",
                  "s3-public-policy", "s3-cross-account"):
        assert got[check] == "error", check
    result = judge_bucket(obs, BucketContext(aws=False), Scope(), rules)
    assert any("not supported by this store" in f.message for f in result.findings)


def test_public_acl_neutralised(rules: S3Rules) -> None:
    grants = [{"Grantee": {"URI": pol.ALL_USERS}, "Permission": "READ"}]
    obs = observation(acl=ok(Grants=grants))
    assert verdicts(obs, rules)["s3-public-acl"] == "fail"
    obs.answers["bpa"] = ok(PublicAccessBlockConfiguration={"IgnorePublicAcls": True})
    assert verdicts(obs, rules)["s3-public-acl"] == "pass"
    obs = observation(acl=ok(Grants=grants), ownership=ok(OwnershipControls={
        "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}))
    got = verdicts(obs, rules)
    assert got["s3-public-acl"] == "pass" and got["s3-object-ownership"] == "pass"


def test_retention_checks(rules: S3Rules) -> None:
    ctx = BucketContext(aws=True, retention="audit-log")
    lock = ok(ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": {
        "DefaultRetention": {"Mode": "COMPLIANCE", "Years": 6, "Days": 0}}})
    life = ok(Rules=[{"ID": "r", "Status": "Enabled", "Expiration": {"Days": 2557}}])
    got = verdicts(observation(lock=lock, lifecycle=life,
                               versioning=ok(Status="Enabled", MFADelete="Enabled")), rules, ctx)
    assert got["s3-object-lock"] == got["s3-lifecycle-retention"] == got["s3-mfa-delete"] == "pass"
    weak = ok(ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": {
        "DefaultRetention": {"Mode": "GOVERNANCE", "Days": 365}}})
    short = ok(Rules=[{"ID": "r", "Status": "Enabled", "Expiration": {"Days": 365},
                       "NoncurrentVersionExpiration": {"NoncurrentDays": 30}}])
    result = judge_bucket(observation(lock=weak, lifecycle=short), ctx, Scope(), rules)
    text = " ".join(f.message for f in result.findings)
    assert "GOVERNANCE" in text and "365 day(s)" in text and "after 30 days" in text
    assert {"s3-object-lock", "s3-lifecycle-retention", "s3-mfa-delete"} <= {
        f.check_id for f in result.findings}
    # without a retention duty none of the three applies
    assert "s3-object-lock" not in verdicts(observation(lock=weak, lifecycle=short), rules)


def test_cross_account_trusted(rules: S3Rules) -> None:
    doc = allow({"AWS": ["arn:aws:iam::999999999999:root", "arn:aws:iam::123456789012:root"]})
    obs = observation(policy=ok(Policy=json.dumps(doc)))
    assert verdicts(obs, rules)["s3-cross-account"] == "fail"
    trusted = Scope(trusted_accounts=frozenset({"999999999999"}))
    assert verdicts(obs, rules, scope=trusted)["s3-cross-account"] == "pass"


def test_effective_bpa_unknown() -> None:
    obs = observation(bpa=Answer("unsupported", code="NotImplemented", http=501))
    # the account level is not asked on such a store: off there, unknown on the bucket
    assert set(effective_bpa(obs).values()) == {None}
    obs.account_bpa = ok(PublicAccessBlockConfiguration={"BlockPublicAcls": True})
    got = effective_bpa(obs)
    assert got["BlockPublicAcls"] is True and got["IgnorePublicAcls"] is None
    obs.answers["bpa"] = ABSENT
    assert effective_bpa(obs)["IgnorePublicAcls"] is False


# ---------------------------------------------------------------------------------------------
# One policy reader for scan s3 and scan permissions. The policies follow the examples of the
# AWS S3 documentation ("Examples of Amazon S3 bucket policies"), on the bucket "b".

OWN = "123456789012"
#: "Restricting access to a specific organization with aws:PrincipalOrgID"
AWS_EXAMPLE_ORG_ONLY = {"Version": "2012-10-17", "Statement": [{
    "Sid": "AllowGetObject", "Principal": {"AWS": "*"}, "Effect": "Allow",
    "Action": "s3:GetObject", "Resource": f"{B}/*",
    "Condition": {"StringEquals": {"aws:PrincipalOrgID": ["o-aa111bb222"]}}}]}
#: "Grant read-only permission to an anonymous user"
AWS_EXAMPLE_ANONYMOUS_READ = {"Version": "2012-10-17", "Statement": [{
    "Sid": "PublicRead", "Effect": "Allow", "Principal": "*",
    "Action": ["s3:GetObject", "s3:GetObjectVersion"], "Resource": [f"{B}/*"]}]}
#: "Restrict access to a VPC endpoint" (the Deny of the example, plus the Allow it protects)
AWS_EXAMPLE_VPCE_ONLY = {"Version": "2012-10-17", "Id": "Policy1415115909152", "Statement": [
    {"Sid": "Access-to-specific-VPCE-only", "Principal": "*", "Action": "s3:*", "Effect": "Deny",
     "Resource": [B, f"{B}/*"],
     "Condition": {"StringNotEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}},
    {"Sid": "Allow-through-VPCE", "Principal": "*", "Action": "s3:GetObject", "Effect": "Allow",
     "Resource": f"{B}/*", "Condition": {"StringEquals": {"aws:SourceVpce": "vpce-1a2b3c4d"}}}]}
#: the organisation example with the condition negated: everyone *outside* the organisation
ORG_NEGATED = {"Statement": [{**AWS_EXAMPLE_ORG_ONLY["Statement"][0], "Condition": {
    "StringNotEquals": {"aws:PrincipalOrgID": "o-aa111bb222"}}}]}
#: "Granting permissions to multiple accounts with added conditions", copied from a template
#: whose account was never filled in, and a role that was deleted (IAM shows its unique id)
TEMPLATE_AND_DELETED_ROLE = {"Version": "2012-10-17", "Statement": [{
    "Sid": "AddCannedAcl", "Effect": "Allow",
    "Principal": {"AWS": ["arn:aws:iam::${AccountId}:root", "AROADBQP57FF2AEXAMPLE"]},
    "Action": ["s3:PutObject", "s3:PutObjectAcl"], "Resource": f"{B}/*"}]}


def _permission_findings(doc: dict) -> tuple[dict[str, str], list[str]]:
    """What scan permissions says about ``doc`` on the PHI bucket b: check → severity."""
    from hipaa_audit.permissions.aws import bucket_policy_grants
    from hipaa_audit.permissions.baseline import parse_baseline
    from hipaa_audit.permissions.model import Facts, Principal, Problem, Resource
    from hipaa_audit.permissions.run import PermOptions, analyse

    got = bucket_policy_grants("b", doc, OWN)
    facts = Facts(sources=["aws"], own_accounts=[OWN])
    facts.add_resource(Resource("s3://b", "bucket", system=f"aws:{OWN}"))
    for p in got.principals:
        facts.add_principal(p)
    facts.add_principal(Principal("anyone", "anyone", "anyone", "aws"))
    facts.grants.extend(got.grants)
    facts.problems.extend(Problem("aws", "s3://b", f"the bucket policy names {u}")
                          for u in got.unmapped)
    baseline = parse_baseline({"roles": {}, "principals": {}, "phi": {"resources": ["s3://b"]}})
    _g, _ctx, results = analyse(facts, PermOptions(baseline, ("aws",)), load_catalog())
    found = {f.check_id: f.severity.value for r in results for f in r.findings}
    return found, got.unmapped


@pytest.mark.parametrize(("name", "doc", "public"), [
    ("org-only", AWS_EXAMPLE_ORG_ONLY, False),
    ("anonymous-read", AWS_EXAMPLE_ANONYMOUS_READ, True),
    ("vpce-only", AWS_EXAMPLE_VPCE_ONLY, False),
    ("org-negated", ORG_NEGATED, True),
])
def test_scan_s3_and_scan_permissions_agree_on_who_is_anyone(
        rules: S3Rules, name: str, doc: dict, public: bool) -> None:
    s3 = verdicts(observation(policy=ok(Policy=json.dumps(doc))), rules)
    assert s3["s3-public-policy"] == ("fail" if public else "pass"), name
    perm, unmapped = _permission_findings(doc)
    assert ("perm-anyone-access" in perm) is public, (name, perm)
    assert not unmapped
    if not public:
        # confined to the organisation or the VPC endpoint: not anyone, but a principal the
        # baseline does not explain, judged like any other
        assert perm.get("perm-grant-outside-baseline") == "high", perm


def test_confinement_reads_operators_as_s3_does() -> None:
    org = AWS_EXAMPLE_ORG_ONLY["Statement"][0]
    assert pol.confinement(org) == ("StringEquals aws:PrincipalOrgID=o-aa111bb222",)
    # a negated or IfExists condition lets requests without the key through: no confinement
    assert pol.confinement({**org, "Condition": {"StringEqualsIfExists": {
        "aws:SourceVpce": "vpce-1"}}}) == ()
    assert pol.confinement(ORG_NEGATED["Statement"][0]) == ()
    assert [p.what for p in pol.read_principals(org)] == ["confined"]
    # an Allow with NotPrincipal is open to everyone not listed
    not_principal = {"Effect": "Allow", "NotPrincipal": {"AWS": f"arn:aws:iam::{OWN}:root"},
                     "Action": "s3:GetObject", "Resource": f"{B}/*"}
    assert pol.public_statements({"Statement": [not_principal]})


def test_unresolvable_principals_are_unverifiable_in_both_scans(rules: S3Rules) -> None:
    doc = TEMPLATE_AND_DELETED_ROLE
    assert [p.what for p in pol.read_principals(doc["Statement"][0])] == ["unresolvable"] * 2
    result = judge_bucket(observation(policy=ok(Policy=json.dumps(doc))),
                          BucketContext(aws=True), Scope(), rules)
    [unverified] = [f for f in result.findings if f.status is Status.ERROR]
    assert unverified.check_id == "s3-unverifiable"
    assert "${AccountId}" in unverified.message and "deleted" in unverified.message
    assert result.coverage.counts["s3-cross-account"] == [1, 0, 1]
    perm, unmapped = _permission_findings(doc)
    assert perm.get("perm-unverifiable") == "medium"
    assert len(unmapped) == 2 and "deleted" in unmapped[1]
    # next to a real foreign account the s3 finding still names them
    mixed = {"Statement": [{**doc["Statement"][0], "Principal": {"AWS": [
        "AROADBQP57FF2AEXAMPLE", "arn:aws:iam::999999999999:root"]}}]}
    result = judge_bucket(observation(policy=ok(Policy=json.dumps(mixed))),
                          BucketContext(aws=True), Scope(), rules)
    [cross] = [f for f in result.findings if f.check_id == "s3-cross-account"]
    assert "999999999999" in cross.message and "AROADBQP57FF2AEXAMPLE" in cross.message
